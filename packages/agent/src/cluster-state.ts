/**
 * ClusterState: what the other nodes of the cluster publish (node records and
 * endpoint records), turned into this node's ipcache and, in direct-routing
 * mode, routes to the other nodes' pod CIDRs. Records are validated; a bad one
 * is skipped and counted, never programmed. When etcd is away the datapath
 * keeps its last state; the watches catch up when it returns.
 */
import { Coalescer, type Logger } from '@weft/common';
import { LabelSet, ReservedIdentity } from '@weft/identity';
import { PrefixWatcher, type KvClient } from '@weft/kvstore';
import { Ip } from '@weft/net';
import type { CidrIdentityView } from '@weft/policy';
import type { AgentConfig } from './config.js';
import type { Datapath, IpcacheUpsert } from './datapath-port.js';
import { routerIp } from './config.js';
import type { NodeEncryption, PeerNode } from './encryption.js';
import { parseServiceRecord, type ServiceRecord } from './services.js';
import { EndpointOwnership } from './endpoint-ownership.js';
import { ENDPOINTS_PREFIX, NODES_PREFIX, parseEndpointPath, parseEndpointRecord, parseNodeRecord, type EndpointRecord, type NodeRecord } from './state.js';

const IPCACHE_F_LOCAL_ENDPOINT = 0x1;
const IPCACHE_F_REMOTE_NODE = 0x2;
const IPCACHE_F_ENCRYPTED = 0x4;
const IPCACHE_F_ENCRYPT_MISSING = 0x8;

/** Where the clustermesh-apiserver of this cluster writes what it imported from remote clusters. */
export const MESH_ROOT = 'weft/mesh/v1/';

export class ClusterState {
  readonly nodes = new Map<string, NodeRecord>();
  /** This cluster's endpoints by IP: only records that pass the ownership checks (endpoint-ownership.ts). */
  readonly endpoints: Map<string, EndpointRecord>;
  private readonly ownership: EndpointOwnership;
  /** Remote clusters' records, keyed `<remote>/<key>` (validated by the importer, parsed again here). */
  readonly remoteNodes = new Map<string, NodeRecord>();
  readonly remoteEndpoints = new Map<string, EndpointRecord>();
  readonly remoteIdentities = new Map<number, LabelSet>();
  /** Remote clusters' exported global services, keyed `<remote>/<namespace>.<name>`. */
  readonly remoteServices = new Map<string, ServiceRecord>();
  /** Remote endpoints by IP, for per-flow lookups. */
  private readonly remoteByIp = new Map<string, EndpointRecord>();
  /** Told when remote identities change (policy must be recomputed). */
  onRemoteIdentities: () => void = () => undefined;
  /** Told on every change of nodes, endpoints or remote services (services must be re-resolved). */
  onChanged: () => void = () => undefined;
  readonly invalid = new Map<string, string>();
  private watchers: PrefixWatcher[] = [];
  private readonly syncer: Coalescer;
  /** cidr -> route arguments after the prefix, as installed. */
  private routes = new Map<string, string>();
  /** `cluster/node` of the nodes reached encrypted -> the route their pod CIDR takes, from the last sync. */
  private encryptedNodes = new Map<string, string>();
  private recheck: NodeJS.Timeout | undefined;
  /** Something the ipcache depends on changed since the last sync. */
  private ipcacheDirty = true;
  private readonly ip = new Ip();
  lastSync: { added: number; updated: number; removed: number; at: string } | undefined;

  constructor(
    private readonly config: AgentConfig,
    private readonly kv: KvClient,
    private readonly datapath: Datapath,
    private readonly cidrIdentities: () => CidrIdentityView[],
    private readonly log: Logger,
    private readonly encryption?: NodeEncryption,
  ) {
    this.syncer = new Coalescer(() => this.sync(), 10, (err) => this.log.error({ err: err.message }, 'ipcache sync failed'));
    this.ownership = new EndpointOwnership({
      onChange: () => undefined,
      onReject: (node, ip, reason) => {
        const key = `${ENDPOINTS_PREFIX}${node}/${ip}`;
        if (reason === undefined) return void this.invalid.delete(key);
        this.invalid.set(key, reason);
        this.log.warn({ key, reason }, 'skipped invalid cluster record');
      },
    });
    this.endpoints = this.ownership.accepted;
  }

  async start(): Promise<void> {
    const nodes = new PrefixWatcher(this.kv, NODES_PREFIX, {
      onEvent: (e) => {
        const name = e.key.slice(NODES_PREFIX.length);
        let keysOnly = false;
        if (e.type === 'delete') this.nodes.delete(name);
        else this.accept(e.key, parseNodeRecord(e.value, this.config.cluster), (r) => {
          if (r.name !== name) {
            this.nodes.delete(name);
            this.invalid.set(e.key, `record name ${JSON.stringify(r.name)} does not match its key`);
            return;
          }
          keysOnly = onlyKeysChanged(this.nodes.get(name), r);
          this.nodes.set(name, r);
        });
        // An invalid record leaves the node without a place: its endpoints go too.
        this.ownership.setNode(name, this.nodes.get(name));
        if (keysOnly) this.scheduleKeys();
        else this.schedule();
      },
    }, { logger: this.log }).start();
    const endpoints = new PrefixWatcher(this.kv, ENDPOINTS_PREFIX, {
      onEvent: (e) => {
        const path = parseEndpointPath(e.key.slice(ENDPOINTS_PREFIX.length));
        if (!path) {
          if (e.type === 'delete') this.invalid.delete(e.key);
          else this.invalid.set(e.key, 'key is not endpoints/<node>/<ip>');
          return;
        }
        if (e.type === 'delete') this.ownership.setEndpoint(path.node, path.ip, undefined);
        else {
          const parsed = parseEndpointRecord(e.value, this.config.clusterId);
          if (typeof parsed === 'string') {
            // What the key held before is no longer valid either.
            this.ownership.setEndpoint(path.node, path.ip, undefined);
            this.accept(e.key, parsed, () => undefined);
          } else this.ownership.setEndpoint(path.node, path.ip, parsed);
        }
        this.schedule();
      },
    }, { logger: this.log }).start();
    const mesh = new PrefixWatcher(this.kv, MESH_ROOT, { onEvent: (e) => this.onMesh(e.type, e.key.slice(MESH_ROOT.length), e.value) }, { logger: this.log }).start();
    this.watchers = [nodes, endpoints, mesh];
    await Promise.all(this.watchers.map((w) => w.waitSynced()));
    this.schedule();
  }

  async stop(): Promise<void> {
    await Promise.all(this.watchers.map((w) => w.stop()));
    clearTimeout(this.recheck);
    await this.syncer.stop();
  }

  /** The endpoint (local cluster or remote) holding `ip`. */
  endpointByIp(ip: string): EndpointRecord | undefined {
    return this.endpoints.get(ip) ?? this.remoteByIp.get(ip);
  }

  /** Remote endpoints grouped by their cluster. */
  remoteEndpointsByCluster(): Map<string, EndpointRecord[]> {
    const out = new Map<string, EndpointRecord[]>();
    for (const [id, e] of this.remoteEndpoints) {
      const cluster = id.slice(0, id.indexOf('/'));
      const list = out.get(cluster);
      if (list) list.push(e);
      else out.set(cluster, [e]);
    }
    return out;
  }

  /** `<remote>/<kind>/<key>` from the mesh cache. */
  private onMesh(type: 'upsert' | 'delete', path: string, value: Buffer): void {
    const [remote, kind, key] = path.split('/', 3);
    if (!remote || !kind || key === undefined) return;
    const id = `${remote}/${key}`;
    if (kind === 'identities') {
      const n = Number(key);
      if (type === 'delete') this.remoteIdentities.delete(n);
      else {
        try {
          this.remoteIdentities.set(n, LabelSet.fromCanonical(value.toString()));
        } catch (err) {
          this.invalid.set(`${MESH_ROOT}${path}`, (err as Error).message);
        }
      }
      this.onRemoteIdentities();
      return;
    }
    if (kind === 'nodes') {
      let keysOnly = false;
      if (type === 'delete') this.remoteNodes.delete(id);
      else this.accept(`${MESH_ROOT}${path}`, parseNodeRecord(value, remote), (r) => {
        keysOnly = onlyKeysChanged(this.remoteNodes.get(id), r);
        this.remoteNodes.set(id, r);
      });
      if (keysOnly) return this.scheduleKeys();
    } else if (kind === 'services') {
      if (type === 'delete') this.remoteServices.delete(id);
      else this.accept(`${MESH_ROOT}${path}`, parseServiceRecord(key, value.toString()), (r) => this.remoteServices.set(id, r));
    } else if (kind === 'endpoints') {
      if (type === 'delete') {
        const old = this.remoteEndpoints.get(id);
        if (old && this.remoteByIp.get(old.ip) === old) this.remoteByIp.delete(old.ip);
        this.remoteEndpoints.delete(id);
      } else {
        try {
          const r = JSON.parse(value.toString()) as EndpointRecord;
          if (typeof r.ip === 'string' && typeof r.identity === 'number' && typeof r.nodeIp === 'string') {
            this.remoteEndpoints.set(id, r);
            this.remoteByIp.set(r.ip, r);
          }
        } catch (err) {
          this.invalid.set(`${MESH_ROOT}${path}`, (err as Error).message);
        }
      }
    } else return;
    this.schedule();
  }

  private accept<T>(key: string, parsed: T | string, store: (r: T) => void): void {
    if (typeof parsed === 'string') {
      this.invalid.set(key, parsed);
      this.log.warn({ key, reason: parsed }, 'skipped invalid cluster record');
      return;
    }
    this.invalid.delete(key);
    store(parsed);
  }

  /** Resync the ipcache soon (changes arriving together are written together). */
  schedule(): void {
    this.ipcacheDirty = true;
    this.syncer.schedule();
    this.onChanged();
  }

  /**
   * Only a node's encryption keys, epoch or confirmations changed (a key
   * rotation under way): bring peers and routes in line; the ipcache and
   * services are touched only if the set of encrypted nodes changes.
   */
  private scheduleKeys(): void {
    this.syncer.schedule();
  }

  /** Every node of every cluster, with the cluster it belongs to. */
  private allNodes(): PeerNode[] {
    const out: PeerNode[] = [...this.nodes.values()].map((record) => ({ cluster: this.config.cluster, record }));
    for (const [id, record] of this.remoteNodes) out.push({ cluster: id.slice(0, id.indexOf('/')), record });
    return out;
  }

  /**
   * Where a pod on another node is sent: encrypted (to the node's router IP,
   * through WireGuard or IPsec), in the clear (encryption off, or not strict and no
   * key), or nowhere (strict and no key: the datapath drops and reports).
   */
  private remotePlacement(nodeIp: string, encryptedRouterIp: Map<string, string>): { tunnelIp: string; flags: number } {
    if (this.config.encryption === 'off') return { tunnelIp: nodeIp, flags: 0 };
    const router = encryptedRouterIp.get(nodeIp);
    if (router) return { tunnelIp: router, flags: IPCACHE_F_ENCRYPTED };
    return { tunnelIp: nodeIp, flags: this.config.encryptionStrict ? IPCACHE_F_ENCRYPT_MISSING : 0 };
  }

  /** The ipcache this node should have now. */
  desired(): IpcacheUpsert[] {
    const out: IpcacheUpsert[] = [];
    const me = this.config.node;
    // Node IP -> router IP of each node reached encrypted, once per sync rather than per endpoint.
    const byIp = new Map<string, string>();
    for (const n of this.allNodes()) if (this.encryptedNodes.has(`${n.cluster}/${n.record.name}`)) byIp.set(n.record.ip, routerIp(n.record.podCidr));
    for (const n of this.nodes.values()) {
      out.push({ cidr: `${n.ip}/32`, identity: n.name === me ? ReservedIdentity.host : ReservedIdentity['remote-node'], flags: IPCACHE_F_REMOTE_NODE, clusterId: this.config.clusterId });
    }
    for (const e of this.endpoints.values()) {
      const local = e.node === me;
      if (local) {
        out.push({ cidr: `${e.ip}/32`, identity: e.identity, flags: IPCACHE_F_LOCAL_ENDPOINT, clusterId: this.config.clusterId });
        continue;
      }
      out.push({ cidr: `${e.ip}/32`, identity: e.identity, clusterId: this.config.clusterId, ...this.remotePlacement(e.nodeIp, byIp) });
    }
    // Remote clusters: their nodes and pods, reached through the remote node (tunnel) or routes.
    for (const n of this.remoteNodes.values()) out.push({ cidr: `${n.ip}/32`, identity: ReservedIdentity['remote-node'], flags: IPCACHE_F_REMOTE_NODE, clusterId: 0 });
    for (const e of this.remoteEndpoints.values()) out.push({ cidr: `${e.ip}/32`, identity: e.identity, clusterId: (e.identity >>> 16) & 0xff, ...this.remotePlacement(e.nodeIp, byIp) });
    for (const c of this.cidrIdentities()) out.push({ cidr: c.cidr, identity: c.id, flags: 0, clusterId: 0 });
    return out;
  }

  private async sync(): Promise<void> {
    // Peers first: a pod CIDR is marked encrypted only once its node is a peer (devices, SAs).
    let recheck = false;
    let dirty = this.ipcacheDirty;
    this.ipcacheDirty = false;
    if (this.encryption) {
      const before = [...this.encryptedNodes.keys()].join();
      ({ routes: this.encryptedNodes, recheck } = await this.encryption.sync(this.allNodes()));
      if ([...this.encryptedNodes.keys()].join() !== before) dirty = true;
    }
    if (dirty) {
      try {
        const result = await this.datapath.syncIpcache(this.desired());
        this.lastSync = { ...result, at: new Date().toISOString() };
      } catch (err) {
        this.ipcacheDirty = true;
        throw err;
      }
    }
    await this.syncRoutes();
    if (!this.encryption) return;
    // Routes are in the kernel now: a key rotation may take its next step.
    await this.encryption.advance();
    clearTimeout(this.recheck);
    if (recheck) this.recheck = setTimeout(() => this.syncer.schedule(), 250).unref();
  }

  /**
   * Routes to other nodes' pod CIDRs: as the encryption says for peers (into a WireGuard device, or via the node where IPsec policies apply)
   * (both routing modes: VXLAN packets go to the peer's router IP inside its
   * pod CIDR); via the node in direct routing without encryption, or when
   * encryption is not strict and the node has no key; none otherwise.
   */
  private async syncRoutes(): Promise<void> {
    const want = new Map<string, string>();
    for (const n of this.allNodes()) {
      if (n.cluster === this.config.cluster && n.record.name === this.config.node) continue;
      const route = this.encryptedNodes.get(`${n.cluster}/${n.record.name}`);
      if (route) want.set(n.record.podCidr, route);
      else if (this.config.routing === 'direct' && (this.config.encryption === 'off' || !this.config.encryptionStrict)) want.set(n.record.podCidr, `via ${n.record.ip}`);
    }
    for (const [cidr, route] of want) {
      if (this.routes.get(cidr) === route) continue;
      await this.ip.replaceRoute([cidr, ...route.split(' ')]);
      this.routes.set(cidr, route);
    }
    for (const cidr of [...this.routes.keys()]) {
      if (want.has(cidr)) continue;
      await this.ip.deleteRoute([cidr]);
      this.routes.delete(cidr);
    }
  }
}

/** Whether a node record changed in its encryption part only (keys, epoch, rotation, confirmations). */
function onlyKeysChanged(before: NodeRecord | undefined, after: NodeRecord): boolean {
  if (!before || !(before.wireguard ?? before.ipsec) || !(after.wireguard ?? after.ipsec)) return false;
  return JSON.stringify({ ...before, wireguard: undefined, ipsec: undefined }) === JSON.stringify({ ...after, wireguard: undefined, ipsec: undefined });
}
