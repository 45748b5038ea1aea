/**
 * IPsec on a node: ESP tunnel-mode SAs and policies (packages/net's Xfrm)
 * with every other node of every connected cluster, keyed per node pair and
 * direction from the mesh key (the same secret on every node, in
 * `ipsecKeyFile`). The node's router IP (first address of its pod CIDR) is
 * on its loopback, and every peer's pod CIDR is routed via the peer's node IP
 * with the router IP as source: pod packets, routed as they are in every
 * routing mode (the datapath tunnels only what goes in the clear), match the
 * policy "local pod CIDR -> peer pod CIDR" and leave as ESP; the receiver's
 * fwd policy admits them only from the SA of the node whose pod CIDR holds
 * their source, and its ipcache gives their identity. (VXLAN to the router
 * IP, as Weft before 2026-12 sent it, matches the same policy.) The in
 * policies require ESP: pod traffic from a peer in the clear is dropped.
 *
 * Key rotation, make-before-break, driven by the key file (a new key id there
 * starts it on every node that sees it):
 *   1. inbound SAs of the new key are installed for every peer; only then is
 *      the key id published in the node record's `keyIds` (receivers first);
 *   2. a node switches its sending to the new key once every peer lists it
 *      (`sendKeyId`, published);
 *   3. an old key's SAs are removed once no peer sends under it any more
 *      (every peer's `sendKeyId` moved on) and this node does not either.
 * It works across clusters: key ids travel in node records, which the
 * clustermesh syncs. The keys on this node survive a restart in the state
 * directory (`ipsec-keys.json`, 0600), so a rotation under way goes on.
 */
import type { Logger } from '@weft/common';
import { Ip, IpsecConfigError, parseMeshKey, Xfrm, type IpsecPeer, type MeshKey, type XfrmStateInfo } from '@weft/net';
import { existsSync, readFileSync, renameSync, statSync, unwatchFile, watchFile, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { routerIp, type AgentConfig } from './config.js';
import type { EncryptionStatus, EncryptionSync, NodeEncryption, PeerNode } from './encryption.js';
import { RotationUnavailableError } from './errors.js';
import type { IpsecRecord, NodeRecord } from '@weft/schema';

/** Reads the mesh key file: JSON {"keyId": 1-15, "key": "<64 hex>"}, not readable by group or others. */
export function readIpsecKeyFile(path: string): MeshKey {
  if (!existsSync(path)) throw new IpsecConfigError(`IPsec key file ${path} does not exist (JSON {"keyId": 1-15, "key": "<64 hex characters>"}, mode 0600)`);
  const mode = statSync(path).mode & 0o777;
  if (mode & 0o077) throw new IpsecConfigError(`IPsec key file ${path} has mode ${mode.toString(8)}: it must not be readable by group or others (chmod 600)`);
  let doc: { keyId?: unknown; key?: unknown };
  try {
    doc = JSON.parse(readFileSync(path, 'utf8')) as typeof doc;
  } catch (err) {
    throw new IpsecConfigError(`IPsec key file ${path} is not JSON: ${(err as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || typeof doc.keyId !== 'number' || typeof doc.key !== 'string') throw new IpsecConfigError(`IPsec key file ${path} must be {"keyId": 1-15, "key": "<64 hex characters>"}`);
  try {
    return parseMeshKey(doc.key, doc.keyId);
  } catch (err) {
    throw new IpsecConfigError(`IPsec key file ${path}: ${(err as Error).message}`);
  }
}

interface Peer {
  id: string;
  node: string;
  cluster: string;
  ipsec: IpsecRecord;
  peer: IpsecPeer;
}

export class IpsecNode implements NodeEncryption {
  readonly mode = 'ipsec';
  private readonly xfrm = new Xfrm();
  private readonly ip = new Ip();
  /** Key id -> key: the key file's, and older ones still in use. */
  private keys = new Map<number, MeshKey>();
  private current!: MeshKey;
  private sendKeyId = 0;
  /** Key ids whose inbound SAs exist for every peer: what is published. */
  private accepted: number[] = [];
  private peers = new Map<string, Peer>();
  /** Peer id -> key ids with an inbound SA installed. */
  private inbound = new Map<string, Set<number>>();
  /** Peer id -> key id its out policy sends under. */
  private outbound = new Map<string, number>();
  private waitingFor: string[] = [];
  private keyFileError: string | undefined;
  refused: EncryptionStatus['refused'] = [];
  onRecordChanged: () => void = () => undefined;
  onSyncNeeded: () => void = () => undefined;
  onRotationFinished: NodeEncryption['onRotationFinished'] = () => undefined;
  /** When this agent saw the key file's new key id (the rotation's start here), while it rotates. */
  private rotationStartedMs: number | undefined;

  constructor(
    private readonly config: AgentConfig,
    private readonly log: Logger,
  ) {}

  private get statePath(): string {
    return join(this.config.stateDir, 'ipsec-keys.json');
  }

  async start(): Promise<void> {
    await this.xfrm.probe();
    this.current = readIpsecKeyFile(this.config.ipsecKeyFile);
    if (existsSync(this.statePath)) {
      const saved = JSON.parse(readFileSync(this.statePath, 'utf8')) as { keys: Array<{ keyId: number; key: string }>; sendKeyId: number };
      for (const k of saved.keys) this.keys.set(k.keyId, parseMeshKey(k.key, k.keyId));
      this.sendKeyId = saved.sendKeyId;
    }
    this.adopt(this.current);
    if (!this.keys.has(this.sendKeyId)) this.sendKeyId = this.current.keyId;
    this.accepted = [...this.keys.keys()].sort((a, b) => a - b);
    this.persist();
    await this.ip.run(['address', 'replace', `${routerIp(this.config.podCidr)}/32`, 'dev', 'lo']);
    watchFile(this.config.ipsecKeyFile, { interval: 500 }, () => this.reloadKeyFile());
    this.log.info({ keyId: this.current.keyId, keyIds: this.accepted, sendKeyId: this.sendKeyId }, 'ipsec ready');
  }

  stop(): void {
    unwatchFile(this.config.ipsecKeyFile);
  }

  async uninstall(): Promise<string[]> {
    this.stop();
    const removed: string[] = [];
    for (const [id, p] of this.peers) {
      await this.xfrm.removePeer(p.peer);
      removed.push(`IPsec SAs and policies of ${id}`);
    }
    this.peers.clear();
    return removed;
  }

  /** A key into the keyring; the same key id with another key is refused (a new key needs a new id). */
  private adopt(key: MeshKey): void {
    const have = this.keys.get(key.keyId);
    if (have && !have.secret.equals(key.secret)) throw new IpsecConfigError(`IPsec key id ${key.keyId} is already in use with another key: a new mesh key needs a new key id`);
    this.keys.set(key.keyId, key);
  }

  private reloadKeyFile(): void {
    let key: MeshKey;
    try {
      key = readIpsecKeyFile(this.config.ipsecKeyFile);
      if (key.keyId === this.current.keyId && key.secret.equals(this.current.secret)) return;
      this.adopt(key);
    } catch (err) {
      // Bad input: the keys in force stay; say what is wrong.
      this.keyFileError = (err as Error).message;
      this.log.error({ err: this.keyFileError }, 'ipsec key file refused; the keys in force stay');
      return;
    }
    this.keyFileError = undefined;
    this.current = key;
    this.rotationStartedMs = Date.now();
    this.persist();
    this.log.info({ keyId: key.keyId, keyIds: [...this.keys.keys()] }, 'ipsec key rotation started: installing the new key for every peer');
    this.onSyncNeeded();
  }

  private persist(): void {
    const tmp = `${this.statePath}.new`;
    const doc = { keys: [...this.keys.values()].map((k) => ({ keyId: k.keyId, key: k.secret.toString('hex') })), sendKeyId: this.sendKeyId };
    writeFileSync(tmp, JSON.stringify(doc), { mode: 0o600 });
    renameSync(tmp, this.statePath);
  }

  publish(record: NodeRecord): void {
    record.ipsec = { keyIds: this.accepted, sendKeyId: this.sendKeyId };
  }

  rotate(): never {
    throw new RotationUnavailableError(`IPsec keys rotate with the mesh key file: write a new key id to ${this.config.ipsecKeyFile} on every node of every connected cluster (weft encrypt rotate does it for the lab)`);
  }

  async advance(): Promise<void> {
    // Rotation steps happen in sync(): nothing waits on routes.
  }

  async sync(nodes: readonly PeerNode[]): Promise<EncryptionSync> {
    const c = this.config;
    const me = `${c.cluster}/${c.node}`;
    const want = new Map<string, Peer>();
    const refused: EncryptionStatus['refused'] = [];
    for (const n of nodes) {
      const id = `${n.cluster}/${n.record.name}`;
      if (id === me) continue;
      if (!n.record.ipsec) {
        refused.push({ node: n.record.name, cluster: n.cluster, reason: 'publishes no IPsec keys' });
        continue;
      }
      want.set(id, { id, node: n.record.name, cluster: n.cluster, ipsec: n.record.ipsec, peer: { localIp: c.nodeIp, remoteIp: n.record.ip, localCidrs: [c.podCidr], remoteCidrs: [n.record.podCidr] } });
    }
    // Gone, or moved (another IP or pod CIDR): its SAs and policies go first.
    for (const [id, old] of this.peers) {
      const now = want.get(id);
      if (now && now.peer.remoteIp === old.peer.remoteIp && now.peer.remoteCidrs[0] === old.peer.remoteCidrs[0]) continue;
      await this.xfrm.removePeer(old.peer);
      this.inbound.delete(id);
      this.outbound.delete(id);
    }
    // 1. Receivers first: every key's inbound SA for every peer.
    for (const p of want.values()) {
      const have = this.inbound.get(p.id) ?? new Set<number>();
      for (const key of this.keys.values()) {
        if (have.has(key.keyId)) continue;
        await this.xfrm.addInbound(p.peer, key);
        have.add(key.keyId);
      }
      this.inbound.set(p.id, have);
    }
    let changed = false;
    const accepted = [...this.keys.keys()].sort((a, b) => a - b);
    if (accepted.join() !== this.accepted.join()) {
      this.accepted = accepted;
      changed = true;
    }
    // 2. Send under the newest key once every peer accepts it.
    const id = this.current.keyId;
    const notYet = [...want.values()].filter((p) => !p.ipsec.keyIds.includes(id));
    if (this.sendKeyId !== id && notYet.length === 0) {
      this.log.info({ from: this.sendKeyId, to: id }, 'ipsec: every peer accepts the new key; sending under it');
      this.sendKeyId = id;
      changed = true;
      this.onRotationFinished('done', this.rotationStartedMs === undefined ? undefined : Date.now() - this.rotationStartedMs);
      this.rotationStartedMs = undefined;
    }
    const routes = new Map<string, string>();
    for (const p of want.values()) {
      // A peer that does not accept our send key yet (it joined late) gets the newest key both have.
      const key = p.ipsec.keyIds.includes(this.sendKeyId) ? this.sendKeyId : [...this.keys.keys()].filter((k) => p.ipsec.keyIds.includes(k)).pop();
      if (key === undefined) {
        refused.push({ node: p.node, cluster: p.cluster, reason: `no IPsec key id in common (ours ${[...this.keys.keys()].join(',')}, its ${p.ipsec.keyIds.join(',')})` });
        continue;
      }
      if (this.outbound.get(p.id) !== key) {
        await this.xfrm.switchOutbound(p.peer, this.keys.get(key)!);
        this.outbound.set(p.id, key);
      }
      routes.set(p.id, `via ${p.peer.remoteIp} src ${routerIp(c.podCidr)}`);
    }
    // 3. Retire old keys nobody sends under any more.
    this.waitingFor = notYet.map((p) => `${p.id} (to accept key ${id})`);
    for (const old of [...this.keys.keys()]) {
      if (old === id) continue;
      const senders = [...want.values()].filter((p) => p.ipsec.sendKeyId === old || this.outbound.get(p.id) === old);
      if (this.sendKeyId === old || senders.length > 0) {
        this.waitingFor.push(...senders.map((p) => `${p.id} (to stop sending under key ${old})`));
        continue;
      }
      for (const p of want.values()) {
        await this.xfrm.removeKey(p.peer, old);
        this.inbound.get(p.id)?.delete(old);
      }
      this.keys.delete(old);
      this.accepted = this.accepted.filter((k) => k !== old);
      changed = true;
      this.log.info({ keyId: old, keyIds: this.accepted }, 'ipsec: old key removed; no peer sends under it');
    }
    for (const r of refused) if (!this.refused.some((x) => x.node === r.node && x.cluster === r.cluster && x.reason === r.reason)) this.log.warn(r, 'node refused as an ipsec peer');
    this.refused = refused;
    this.peers = want;
    if (changed) {
      this.persist();
      this.onRecordChanged();
    }
    // A peer's record changing is what moves a rotation on; nothing waits on time.
    return { routes, recheck: false };
  }

  async status(): Promise<EncryptionStatus> {
    const states = await this.xfrm.states();
    const me = this.config.nodeIp;
    const sa = (s: XfrmStateInfo, direction: 'in' | 'out') => ({ direction, spi: `0x${s.spi.toString(16).padStart(8, '0')}`, keyId: s.keyId, packets: s.packets, bytes: s.bytes, integrityFailures: s.integrityFailures, replayDrops: s.replayDrops + s.replayWindowDrops });
    const out: EncryptionStatus = {
      mode: 'ipsec',
      strict: this.config.encryptionStrict,
      routerIp: routerIp(this.config.podCidr),
      ipsec: { keyIds: this.accepted, sendKeyId: this.sendKeyId, keyFile: this.config.ipsecKeyFile, waitingFor: this.waitingFor },
      peers: [...this.peers.values()].filter((p) => this.outbound.has(p.id)).map((p) => {
        const sas = [...states.filter((s) => s.src === me && s.dst === p.peer.remoteIp).map((s) => sa(s, 'out')), ...states.filter((s) => s.src === p.peer.remoteIp && s.dst === me).map((s) => sa(s, 'in'))];
        return {
          node: p.node,
          cluster: p.cluster,
          encrypted: true,
          endpoint: p.peer.remoteIp,
          allowedIps: p.peer.remoteCidrs,
          rxBytes: sas.filter((s) => s.direction === 'in').reduce((a, s) => a + s.bytes, 0),
          txBytes: sas.filter((s) => s.direction === 'out').reduce((a, s) => a + s.bytes, 0),
          keyIds: p.ipsec.keyIds,
          sendKeyId: this.outbound.get(p.id)!,
          sas,
        };
      }),
      refused: this.refused,
    };
    if (this.keyFileError) out.ipsec!.keyFileError = this.keyFileError;
    return out;
  }
}
