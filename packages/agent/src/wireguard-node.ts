/**
 * WireGuard on a node: two WireGuard devices ("lanes"; kernel WireGuard where
 * the kernel has it, else wireguard-go: `wireguardImplementation`), each with its own
 * key pair (private keys 0600 in the state directory, public keys published
 * in the node record) and UDP port, both carrying the node's router IP
 * (first address of its pod CIDR). Every other node of every connected
 * cluster is a peer on both lanes, with its pod CIDR as allowed IPs; the
 * remote pod CIDR is routed into the lane this node sends to it on, so VXLAN
 * packets (sent to the remote router IP) and directly routed pod packets
 * both leave encrypted. Two lanes let a static key rotate without a lost
 * packet: traffic keeps to one lane while the other's key changes (the
 * protocol is in key-rotation.ts; this class carries it out).
 *
 * A node record that reuses another node's public key is refused for both
 * (one of them lies; neither gets traffic) and reported.
 */
import { WeftError, type Logger } from '@weft/common';
import { ensureWireGuard, Ip, loadOrCreateNodeKey, replaceNodeKey, type NodeKeys, type PeerConfig, type WireGuardDevice } from '@weft/net';
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { routerIp, WIREGUARD_OVERHEAD, wireguardLanes, type AgentConfig } from './config.js';
import { RotationInProgressError, RotationUnavailableError } from './errors.js';
import { ackFor, blockedLanes, chooseSendLane, pickRotationLane, rotationStep, type PeerView, type RotationState } from './key-rotation.js';
import { LIVE_HANDSHAKE_S, type EncryptionStatus, type EncryptionSync, type NodeEncryption, type PeerNode, type RotationRecord } from './encryption.js';
import type { Lane, NodeRecord, WireGuardRecord } from '@weft/schema';

interface LaneDevice {
  lane: Lane;
  device: string;
  port: number;
  keyPath: string;
  keys: NodeKeys;
  bornMs: number;
  dev: WireGuardDevice;
  /** public key -> peer config as last written. */
  peers: Map<string, PeerConfig>;
}

/** What survives an agent restart besides the keys: the epoch and a rotation under way. */
interface Persisted {
  epoch: number;
  rotation?: RotationState & { reason: RotationRecord['reason'] };
  last?: RotationRecord;
}

interface Peer {
  id: string;
  node: string;
  cluster: string;
  record: NodeRecord & { wireguard: WireGuardRecord };
}

export class WireGuardNode implements NodeEncryption {
  readonly mode = 'wireguard';
  private lanes!: [LaneDevice, LaneDevice];
  private readonly ip = new Ip();
  private state: Persisted = { epoch: 0 };
  private peersById = new Map<string, Peer>();
  private sendLane = new Map<string, Lane>();
  private acks = new Map<string, number>();
  private waitingFor: string[] = [];
  private scheduler: NodeJS.Timeout | undefined;
  private readonly me: string;
  refused: EncryptionStatus['refused'] = [];
  onRecordChanged: () => void = () => undefined;
  /** Told when a sync is needed outside of record changes (a rotation started). */
  onSyncNeeded: () => void = () => undefined;
  onRotationFinished: NodeEncryption['onRotationFinished'] = () => undefined;

  constructor(
    private readonly config: AgentConfig,
    private readonly log: Logger,
  ) {
    this.me = `${config.cluster}/${config.node}`;
  }

  private get statePath(): string {
    return join(this.config.stateDir, 'wireguard-rotation.json');
  }

  async start(): Promise<void> {
    const c = this.config;
    const legacy = join(c.stateDir, 'wireguard.key');
    const [d0, d1] = wireguardLanes(c);
    this.lanes = [await this.openLane(0, d0!.device, d0!.port, legacy), await this.openLane(1, d1!.device, d1!.port)];
    if (existsSync(this.statePath)) this.state = JSON.parse(readFileSync(this.statePath, 'utf8')) as Persisted;
    if (this.state.rotation?.phase === 'drain') {
      // Nothing changed yet but where traffic went: give the drain up rather than resume it blind.
      this.finishRotation('aborted', 'the agent restarted while draining');
    }
    this.startSchedule();
  }

  private async openLane(lane: Lane, device: string, port: number, legacyKey?: string): Promise<LaneDevice> {
    const keyPath = join(this.config.stateDir, `wireguard-lane${lane}.key`);
    // A node that ran with one device keeps its key as lane 0's.
    if (legacyKey && !existsSync(keyPath) && existsSync(legacyKey)) renameSync(legacyKey, keyPath);
    const keys = loadOrCreateNodeKey(keyPath);
    const dev = await ensureWireGuard(device, { implementation: this.config.wireguardImplementation });
    await dev.configure(keys.privateKey, port);
    // A restarted agent finds its peers in the running device: diff against them.
    const peers = new Map<string, PeerConfig>();
    for (const p of await dev.peers()) peers.set(p.publicKey, { publicKey: p.publicKey, endpoint: p.endpoint ?? '', allowedIps: p.allowedIps });
    await this.ip.run(['address', 'replace', `${routerIp(this.config.podCidr)}/32`, 'dev', device]);
    await this.ip.run(['link', 'set', device, 'mtu', String(this.config.underlayMtu - WIREGUARD_OVERHEAD), 'up']);
    // Each direction of a pair picks its lane: replies may arrive on the other device.
    writeFileSync(join(this.config.procSysNet ?? '/proc/sys/net', 'ipv4', 'conf', device, 'rp_filter'), '0');
    this.log.info({ device, lane, publicKey: keys.publicKeyText, port, implementation: dev.implementation }, 'wireguard lane ready');
    return { lane, device, port, keyPath, keys, bornMs: statSync(keyPath).mtimeMs, dev, peers };
  }

  stop(): void {
    if (this.scheduler) clearInterval(this.scheduler);
  }

  async uninstall(): Promise<string[]> {
    this.stop();
    const removed: string[] = [];
    // The lanes' routes go with their devices; wireguard-go exits when its TUN device is deleted.
    for (const lane of this.lanes ?? []) {
      if (!(await this.ip.link(lane.device))) continue;
      await this.ip.deleteLink(lane.device);
      removed.push(`link ${lane.device}`);
    }
    return removed;
  }

  publish(record: NodeRecord): void {
    record.wireguard = this.record();
  }

  /** What this node publishes in its node record. */
  record(): WireGuardRecord {
    const r: WireGuardRecord = { lanes: [this.laneRecord(0), this.laneRecord(1)], epoch: this.state.epoch };
    if (this.state.rotation) r.rotation = { lane: this.state.rotation.lane, phase: this.state.rotation.phase };
    if (this.acks.size > 0) r.acks = Object.fromEntries(this.acks);
    return r;
  }

  private laneRecord(lane: Lane): { publicKey: string; port: number } {
    return { publicKey: this.lanes[lane].keys.publicKeyText, port: this.lanes[lane].port };
  }

  /** The peers: every other node with keys no other node claims. */
  private selectPeers(nodes: readonly PeerNode[]): Map<string, Peer> {
    const mine = new Set(this.lanes.map((l) => l.keys.publicKeyText));
    const byKey = new Map<string, Peer[]>();
    const refused: EncryptionStatus['refused'] = [];
    for (const n of nodes) {
      const id = `${n.cluster}/${n.record.name}`;
      if (id === this.me) continue;
      if (!n.record.wireguard) {
        refused.push({ node: n.record.name, cluster: n.cluster, reason: 'publishes no WireGuard key' });
        continue;
      }
      const p: Peer = { id, node: n.record.name, cluster: n.cluster, record: n.record as Peer['record'] };
      for (const l of n.record.wireguard.lanes) byKey.set(l.publicKey, [...(byKey.get(l.publicKey) ?? []), p]);
    }
    const bad = new Map<string, string>();
    for (const [key, list] of byKey) {
      if (list.length < 2 && !mine.has(key)) continue;
      for (const p of list) bad.set(p.id, `public key ${key.slice(0, 8)}... is also claimed by ${mine.has(key) ? 'this node' : list.filter((x) => x !== p).map((x) => x.id).join(', ')}`);
    }
    const peers = new Map<string, Peer>();
    for (const list of byKey.values()) {
      for (const p of list) {
        const reason = bad.get(p.id);
        if (reason === undefined) peers.set(p.id, p);
        else if (!refused.some((r) => `${r.cluster}/${r.node}` === p.id)) refused.push({ node: p.node, cluster: p.cluster, reason });
      }
    }
    for (const r of refused) if (!this.refused.some((x) => x.node === r.node && x.cluster === r.cluster && x.reason === r.reason)) this.log.warn(r, 'node refused as a wireguard peer');
    this.refused = refused;
    return peers;
  }

  /**
   * Brings both devices' peers in line with the nodes, picks the lane each
   * peer is sent to on, and works out what to confirm to rotating peers.
   * Returns the device each peer's pod CIDR is to be routed into.
   */
  async sync(nodes: readonly PeerNode[]): Promise<EncryptionSync> {
    const peers = this.selectPeers(nodes);
    for (const lane of this.lanes) {
      const want = new Map<string, PeerConfig>();
      for (const p of peers.values()) {
        const l = p.record.wireguard.lanes[lane.lane];
        want.set(l.publicKey, { publicKey: l.publicKey, endpoint: `${p.record.ip}:${l.port}`, allowedIps: peerAllowedIps(p.record) });
      }
      const changed = [...want.values()].filter((p) => {
        const old = lane.peers.get(p.publicKey);
        return !old || old.endpoint !== p.endpoint || old.allowedIps.join(',') !== p.allowedIps.join(',');
      });
      const removed = [...lane.peers.keys()].filter((k) => !want.has(k));
      if (changed.length > 0 || removed.length > 0) {
        await lane.dev.setPeers(changed, removed);
        this.log.info({ device: lane.device, added: changed.length, removed: removed.length, peers: want.size }, 'wireguard peers updated');
      }
      lane.peers = want;
    }
    let live: Map<string, number> | undefined;
    // A session is live if its handshake is recent and not older than our key on that lane (a key change ends sessions).
    const isLive = async (p: Peer, lane: Lane): Promise<boolean> => {
      live ??= await this.handshakes();
      const at = live.get(p.record.wireguard.lanes[lane].publicKey) ?? 0;
      return at > 0 && handshakeSince(at, this.lanes[lane].dev.handshakeResolutionSec, this.lanes[lane].bornMs) && at > Date.now() / 1000 - LIVE_HANDSHAKE_S;
    };
    const routes = new Map<string, string>();
    const acks = new Map<string, number>();
    let recheck = this.state.rotation !== undefined;
    for (const p of peers.values()) {
      const blocked = blockedLanes(this.state.rotation, p.record.wireguard);
      const current = this.sendLane.get(p.id);
      let lane: Lane;
      if (current !== undefined && !blocked.has(current)) lane = current;
      else {
        const liveness: [boolean, boolean] = [await isLive(p, 0), await isLive(p, 1)];
        lane = chooseSendLane(current, blocked, (l) => liveness[l]);
        if (lane !== current && current !== undefined) this.log.info({ peer: p.id, from: current, to: lane }, 'peer traffic moved to the other lane');
      }
      if (blocked.has(lane)) recheck = true;
      this.sendLane.set(p.id, lane);
      routes.set(p.id, `dev ${this.lanes[lane].device}`);
      const ack = ackFor(p.record.wireguard, lane);
      if (ack !== undefined) acks.set(p.id, ack);
      if (p.record.wireguard.rotation) recheck = true;
    }
    for (const id of [...this.sendLane.keys()]) if (!peers.has(id)) this.sendLane.delete(id);
    this.peersById = peers;
    if (!sameMap(acks, this.acks)) {
      this.acks = acks;
      this.onRecordChanged();
    }
    return { routes, recheck };
  }

  /** Public key -> last handshake (seconds since the epoch), both lanes. */
  private async handshakes(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const lane of this.lanes) for (const p of await lane.dev.peers()) out.set(p.publicKey, p.lastHandshakeSec);
    return out;
  }

  /**
   * Moves this node's own rotation on, once the routes of the last sync are
   * installed (so "own traffic is off the lane" holds in the kernel).
   */
  async advance(): Promise<void> {
    const rot = this.state.rotation;
    if (!rot) return;
    const step = rotationStep({
      me: this.me,
      rotation: rot,
      epoch: this.state.epoch,
      peers: [...this.peersById.values()].map((p): PeerView => ({ id: p.id, wireguard: p.record.wireguard })),
      sendLanes: this.sendLane.values(),
      nowMs: Date.now(),
      drainTimeoutMs: this.config.keyRotationTimeoutSec * 1000,
    });
    if (step.kind === 'wait') {
      this.waitingFor = step.waitingFor;
      return;
    }
    this.waitingFor = [];
    if (step.kind === 'abort') return this.finishRotation('aborted', step.reason);
    if (rot.phase === 'rekey') return this.finishRotation('done');
    // Every peer sends to us off this lane and we send nothing on it: its key can change.
    const lane = this.lanes[rot.lane];
    this.persist({ ...this.state, epoch: this.state.epoch + 1, rotation: { ...rot, phase: 'rekey' } });
    lane.keys = replaceNodeKey(lane.keyPath);
    lane.bornMs = Date.now();
    await lane.dev.setPrivateKey(lane.keys.privateKey);
    // Sessions on this lane ended with the old key: start new ones now, not at the next keepalive.
    await lane.dev.setPeers([...lane.peers.values()], [], { handshakeNow: true });
    this.log.info({ lane: rot.lane, epoch: this.state.epoch, publicKey: lane.keys.publicKeyText }, 'key rotation: new key installed; waiting for every peer to install it');
    this.onRecordChanged();
  }

  private finishRotation(outcome: RotationRecord['outcome'], detail?: string): void {
    const rot = this.state.rotation!;
    const now = Date.now();
    const last: RotationRecord = { lane: rot.lane, reason: rot.reason, startedAt: new Date(rot.startedAtMs).toISOString(), finishedAt: new Date(now).toISOString(), durationMs: now - rot.startedAtMs, outcome };
    if (detail) last.detail = detail;
    this.persist({ epoch: this.state.epoch + 1, last });
    if (outcome === 'done') this.log.info({ lane: rot.lane, durationMs: last.durationMs, epoch: this.state.epoch }, 'key rotation done: every peer holds the new key');
    else this.log.warn({ lane: rot.lane, reason: detail }, 'key rotation given up before any key changed');
    this.onRotationFinished(outcome, last.durationMs);
    this.onRecordChanged();
    this.onSyncNeeded();
  }

  private persist(state: Persisted): void {
    const tmp = `${this.statePath}.new`;
    writeFileSync(tmp, JSON.stringify(state), { mode: 0o600 });
    renameSync(tmp, this.statePath);
    this.state = state;
  }

  /**
   * Starts rotating one lane's key (the older one, or the one peers rotate).
   * Returns at once; `status()` shows the progress.
   */
  rotate(reason: RotationRecord['reason'] = 'manual'): { lane: Lane; epoch: number } {
    const cur = this.state.rotation;
    if (cur) throw new RotationInProgressError(cur.lane, cur.phase, new Date(cur.startedAtMs).toISOString());
    let lane: Lane;
    try {
      lane = pickRotationLane([...this.peersById.values()].map((p) => ({ id: p.id, wireguard: p.record.wireguard })), [this.lanes[0].bornMs, this.lanes[1].bornMs]);
    } catch (err) {
      throw new RotationUnavailableError((err as Error).message);
    }
    this.persist({ ...this.state, epoch: this.state.epoch + 1, rotation: { lane, phase: 'drain', startedAtMs: Date.now(), reason } });
    this.log.info({ lane, reason, epoch: this.state.epoch, peers: this.peersById.size }, 'key rotation started: moving traffic off the lane');
    this.onRecordChanged();
    this.onSyncNeeded();
    return { lane, epoch: this.state.epoch };
  }

  /** Rotates on schedule: when the older key has lived the configured interval. */
  private startSchedule(): void {
    const intervalMs = this.config.keyRotationIntervalSec * 1000;
    if (intervalMs <= 0) return;
    this.scheduler = setInterval(() => {
      if (this.state.rotation || Date.now() < this.nextRotationMs()!) return;
      try {
        this.rotate('schedule');
      } catch (err) {
        if (err instanceof WeftError) this.log.info({ reason: err.message }, 'scheduled key rotation postponed');
        else throw err;
      }
    }, Math.min(intervalMs / 4, 60_000)).unref();
  }

  private nextRotationMs(): number | undefined {
    if (this.config.keyRotationIntervalSec <= 0) return undefined;
    return Math.min(this.lanes[0].bornMs, this.lanes[1].bornMs) + this.config.keyRotationIntervalSec * 1000;
  }

  async status(): Promise<EncryptionStatus> {
    const live = new Map<string, { lastHandshakeSec: number; rxBytes: number; txBytes: number }>();
    for (const lane of this.lanes) for (const p of await lane.dev.peers()) live.set(p.publicKey, p);
    const iso = (sec: number | undefined): string | undefined => (sec ? new Date(sec * 1000).toISOString() : undefined);
    const out: EncryptionStatus = {
      mode: 'wireguard',
      strict: this.config.encryptionStrict,
      routerIp: routerIp(this.config.podCidr),
      epoch: this.state.epoch,
      lanes: this.lanes.map((l) => ({ lane: l.lane, device: l.device, implementation: l.dev.implementation, publicKey: l.keys.publicKeyText, port: l.port, keyCreated: new Date(l.bornMs).toISOString() })),
      peers: [...this.peersById.values()].map((p) => {
        const sendLane = this.sendLane.get(p.id) ?? 0;
        const lanes = ([0, 1] as const).map((lane) => {
          const l = p.record.wireguard.lanes[lane];
          const s = live.get(l.publicKey);
          return { lane, publicKey: l.publicKey, endpoint: `${p.record.ip}:${l.port}`, lastHandshake: iso(s?.lastHandshakeSec), rxBytes: s?.rxBytes ?? 0, txBytes: s?.txBytes ?? 0 };
        });
        const latest = Math.max(...lanes.map((l) => live.get(l.publicKey)?.lastHandshakeSec ?? 0));
        const row: EncryptionStatus['peers'][number] = {
          node: p.node,
          cluster: p.cluster,
          encrypted: true,
          epoch: p.record.wireguard.epoch,
          sendLane,
          device: this.lanes[sendLane].device,
          endpoint: lanes[sendLane]!.endpoint,
          allowedIps: peerAllowedIps(p.record),
          rxBytes: lanes[0]!.rxBytes + lanes[1]!.rxBytes,
          txBytes: lanes[0]!.txBytes + lanes[1]!.txBytes,
          lanes,
        };
        if (latest > 0) row.lastHandshake = iso(latest);
        if (p.record.wireguard.rotation) row.rotating = `lane ${p.record.wireguard.rotation.lane} (${p.record.wireguard.rotation.phase})`;
        return row;
      }),
      refused: this.refused,
    };
    const rot = this.state.rotation;
    if (rot) out.rotation = { lane: rot.lane, phase: rot.phase, startedAt: new Date(rot.startedAtMs).toISOString(), waitingFor: this.waitingFor };
    if (this.state.last) out.lastRotation = this.state.last;
    const next = this.nextRotationMs();
    if (next !== undefined) out.nextRotation = new Date(next).toISOString();
    return out;
  }
}

/**
 * Whether a handshake reported as `handshakeSec`, with the device's
 * resolution, may have happened at or after an event (a key change) at
 * `sinceMs`. The kernel reports whole seconds: a handshake shown in the
 * event's own second may have followed it, and counts. Refusing it would be
 * worse: a live session would look dead until its next handshake, two
 * minutes on, and stall a rotation's drain; one counted wrongly only makes
 * the first packets sent on it wait for a handshake (both implementations
 * hold up to 128 packets per peer meanwhile).
 */
/**
 * What a peer may send from: its pods, and its own address. The node's address because a node's
 * replies to our pods go into its WireGuard device (our pod CIDR is routed there) with that address
 * as their source, while the pods' requests to it went in the clear (a node's address is no pod):
 * without it, WireGuard drops every reply from another node's host network to a pod.
 */
function peerAllowedIps(record: Pick<NodeRecord, 'podCidr' | 'ip'>): string[] {
  return [record.podCidr, `${record.ip}/32`];
}

export function handshakeSince(handshakeSec: number, resolutionSec: number, sinceMs: number): boolean {
  return handshakeSec + resolutionSec > sinceMs / 1000;
}

function sameMap<K, V>(a: ReadonlyMap<K, V>, b: ReadonlyMap<K, V>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}
