/**
 * WireGuard on a node: its key pair (private key 0600 in the state
 * directory, public key published in the node record), its wireguard-go
 * device with the node's router IP (first address of its pod CIDR), and one
 * peer per other node of every connected cluster, whose allowed IPs are that
 * node's pod CIDR. Traffic reaches the device by route: a remote pod CIDR is
 * routed into it, so VXLAN packets (sent to the remote router IP) and
 * directly routed pod packets both leave encrypted.
 *
 * A node record that reuses another node's public key is refused for both
 * (one of them lies; neither gets traffic) and reported.
 */
import type { Logger } from '@weft/common';
import { ensureWireGuardGo, Ip, loadOrCreateNodeKey, type NodeKeys, type PeerConfig, type PeerStatus, type WireGuardUapi } from '@weft/net';
import { join } from 'node:path';
import { routerIp, WIREGUARD_OVERHEAD, type AgentConfig } from './config.js';
import type { NodeRecord } from './state.js';

export interface PeerNode {
  cluster: string;
  record: NodeRecord;
}

export interface EncryptionStatus {
  mode: 'wireguard' | 'off';
  strict: boolean;
  device?: string;
  publicKey?: string;
  routerIp?: string;
  peers: Array<{ node: string; cluster: string; endpoint: string; allowedIps: string[]; lastHandshake?: string; rxBytes: number; txBytes: number }>;
  /** Nodes that cannot be peers (no key, or a key another node also claims), with the reason. */
  refused: Array<{ node: string; cluster: string; reason: string }>;
}

export class WireGuardNode {
  private keys!: NodeKeys;
  private uapi!: WireGuardUapi;
  private readonly ip = new Ip();
  /** public key -> peer config as last written. */
  private peers = new Map<string, PeerConfig & { node: string; cluster: string }>();
  refused: EncryptionStatus['refused'] = [];

  constructor(
    private readonly config: AgentConfig,
    private readonly log: Logger,
  ) {}

  get publicKey(): string {
    return this.keys.publicKeyText;
  }

  async start(): Promise<void> {
    const c = this.config;
    this.keys = loadOrCreateNodeKey(join(c.stateDir, 'wireguard.key'));
    this.uapi = await ensureWireGuardGo(c.wireguardDevice);
    await this.uapi.configure(this.keys.privateKey, c.wireguardPort);
    // A restarted agent finds its peers in the running device: diff against them.
    for (const p of await this.uapi.peers()) this.peers.set(p.publicKey, { publicKey: p.publicKey, endpoint: p.endpoint ?? '', allowedIps: p.allowedIps, node: '?', cluster: '?' });
    await this.ip.run(['address', 'replace', `${routerIp(c.podCidr)}/32`, 'dev', c.wireguardDevice]);
    await this.ip.run(['link', 'set', c.wireguardDevice, 'mtu', String(c.underlayMtu - WIREGUARD_OVERHEAD), 'up']);
    this.log.info({ device: c.wireguardDevice, publicKey: this.keys.publicKeyText, port: c.wireguardPort }, 'wireguard ready');
  }

  /**
   * The nodes that are peers: every other node with a key no other node
   * claims. Returns their names (`cluster/node`) so the caller routes and
   * marks only those as encrypted.
   */
  async sync(nodes: readonly PeerNode[]): Promise<Set<string>> {
    const me = `${this.config.cluster}/${this.config.node}`;
    const byKey = new Map<string, PeerNode[]>();
    const refused: EncryptionStatus['refused'] = [];
    for (const n of nodes) {
      if (`${n.cluster}/${n.record.name}` === me) continue;
      if (!n.record.wireguard) {
        refused.push({ node: n.record.name, cluster: n.cluster, reason: 'publishes no WireGuard key' });
        continue;
      }
      const list = byKey.get(n.record.wireguard.publicKey) ?? [];
      list.push(n);
      byKey.set(n.record.wireguard.publicKey, list);
    }
    const want = new Map<string, PeerConfig & { node: string; cluster: string }>();
    const ready = new Set<string>();
    for (const [publicKey, list] of byKey) {
      if (list.length > 1 || publicKey === this.keys.publicKeyText) {
        for (const n of list) refused.push({ node: n.record.name, cluster: n.cluster, reason: `public key ${publicKey.slice(0, 8)}... is also claimed by ${publicKey === this.keys.publicKeyText ? 'this node' : list.filter((x) => x !== n).map((x) => `${x.cluster}/${x.record.name}`).join(', ')}` });
        continue;
      }
      const n = list[0]!;
      want.set(publicKey, { publicKey, endpoint: `${n.record.ip}:${n.record.wireguard!.port}`, allowedIps: [n.record.podCidr], node: n.record.name, cluster: n.cluster });
      ready.add(`${n.cluster}/${n.record.name}`);
    }
    const changed = [...want.values()].filter((p) => {
      const old = this.peers.get(p.publicKey);
      return !old || old.endpoint !== p.endpoint || old.allowedIps.join(',') !== p.allowedIps.join(',');
    });
    const removed = [...this.peers.keys()].filter((k) => !want.has(k));
    if (changed.length > 0 || removed.length > 0) {
      await this.uapi.setPeers(changed, removed);
      this.log.info({ added: changed.length, removed: removed.length, peers: want.size }, 'wireguard peers updated');
    }
    for (const r of refused) if (!this.refused.some((x) => x.node === r.node && x.cluster === r.cluster && x.reason === r.reason)) this.log.warn(r, 'node refused as a wireguard peer');
    this.peers = want;
    this.refused = refused;
    return ready;
  }

  async status(): Promise<EncryptionStatus> {
    const live = new Map<string, PeerStatus>((await this.uapi.peers()).map((p) => [p.publicKey, p]));
    return {
      mode: 'wireguard',
      strict: this.config.encryptionStrict,
      device: this.config.wireguardDevice,
      publicKey: this.keys.publicKeyText,
      routerIp: routerIp(this.config.podCidr),
      peers: [...this.peers.values()].map((p) => {
        const l = live.get(p.publicKey);
        const row: EncryptionStatus['peers'][number] = { node: p.node, cluster: p.cluster, endpoint: p.endpoint, allowedIps: p.allowedIps, rxBytes: l?.rxBytes ?? 0, txBytes: l?.txBytes ?? 0 };
        if (l && l.lastHandshakeSec > 0) row.lastHandshake = new Date(l.lastHandshakeSec * 1000).toISOString();
        return row;
      }),
      refused: this.refused,
    };
  }
}
