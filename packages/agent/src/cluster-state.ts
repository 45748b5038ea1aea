/**
 * ClusterState: what the other nodes of the cluster publish (node records and
 * endpoint records), turned into this node's ipcache, its table of node
 * addresses (who may send tunnel packets, node-addresses.ts) and, in
 * direct-routing mode, routes to the other nodes' pod CIDRs. Records are
 * validated; a bad one is skipped and counted, never programmed. When etcd is
 * away the datapath keeps its last state; the watches catch up when it returns.
 *
 * Remote clusters' records (the mesh cache the clustermesh-apiserver writes)
 * are admitted again here by mesh-admission's rules, whoever wrote them: a
 * remote never takes over a local address, a route or another remote's
 * range, and local state always wins in the ipcache.
 *
 * A remote cluster's id comes from this cluster's clustermesh-apiserver, which
 * writes the id its own configuration gives each remote
 * (weft/mesh/v1/<remote>/cluster/info), never from what the remote sends: it
 * is what a remote node's tunnel packets are held to.
 */
import { Coalescer, formatCidr, prefixMask, type Logger } from '@weft/common';
import { CLUSTER_LABEL, LabelSet, LOCAL_ID_MIN, ReservedIdentity, clusterIdOf, localIdOf, parseIdentity } from '@weft/identity';
import { PrefixWatcher, type KvClient } from '@weft/kvstore';
import { Ip } from '@weft/net';
import { CidrSet, parseCidr, parseIpv4, type CidrIdentityView } from '@weft/policy';
import type { AgentConfig } from './config.js';
import type { Datapath, IpcacheUpsert, NodeAddressUpsert } from './datapath-port.js';
import { routerIp, serviceCidrsOf } from './config.js';
import type { NodeEncryption, PeerNode } from './encryption.js';
import { nodeAddresses } from './node-addresses.js';
import { DEFAULT_MIN_POD_CIDR_BITS, LocalAddresses, RemoteClaims, remoteEndpointProblem, remoteNodeProblem } from '@weft/schema';
import { EndpointOwnership, MESH_ROOT, parseServiceRecord, type ServiceRecord } from '@weft/schema';
import { ENDPOINTS_PREFIX, NODES_PREFIX, parseEndpointPath, parseEndpointRecord, parseNodeRecord, type EndpointRecord, type NodeRecord } from '@weft/schema';

const IPCACHE_F_LOCAL_ENDPOINT = 0x1;
const IPCACHE_F_REMOTE_NODE = 0x2;
const IPCACHE_F_ENCRYPTED = 0x4;
const IPCACHE_F_ENCRYPT_MISSING = 0x8;


/** The remote records this node uses: those mesh-admission's rules let through, against local state and each other. */
interface Admitted {
  /** `<remote>/<node>` -> record. */
  nodes: Map<string, NodeRecord>;
  /** `<remote>/<ip>` -> record. */
  endpoints: Map<string, EndpointRecord>;
  byIp: Map<string, EndpointRecord>;
  /** Mesh cache key -> why it is not used. */
  refused: Map<string, string>;
}

export class ClusterState {
  readonly nodes = new Map<string, NodeRecord>();
  /** This cluster's endpoints by IP: only records that pass the ownership checks (endpoint-ownership.ts). */
  readonly endpoints: Map<string, EndpointRecord>;
  private readonly ownership: EndpointOwnership;
  /** Remote clusters' records, keyed `<remote>/<key>` (validated by the importer, parsed again here). */
  readonly remoteNodes = new Map<string, NodeRecord>();
  readonly remoteEndpoints = new Map<string, EndpointRecord>();
  readonly remoteIdentities = new Map<number, LabelSet>();
  /** Remote cluster name -> its cluster id, as this cluster's clustermesh configuration gives it. */
  readonly remoteClusterIds = new Map<string, number>();
  /** Addresses two nodes claim (left out of the node table), from the last sync. */
  nodeAddressConflicts: Array<{ addr: string; nodes: string[] }> = [];
  /** Remote clusters' exported global services, keyed `<remote>/<namespace>.<name>`. */
  readonly remoteServices = new Map<string, ServiceRecord>();
  /** What of the remote records passed admission; undefined when something it depends on changed. */
  private admittedCache: Admitted | undefined;
  /** Remote records refused at the last admission, by mesh cache key, with the reason (status: invalidRecords). */
  refused = new Map<string, string>();
  /** The underlay networks (config, else the network of the address holding nodeIp). */
  private underlayCidrs: string[] = [];
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
  private readonly ip: Ip;
  lastSync: { added: number; updated: number; removed: number; at: string } | undefined;

  constructor(
    private readonly config: AgentConfig,
    private readonly kv: KvClient,
    private readonly datapath: Datapath,
    private readonly cidrIdentities: () => CidrIdentityView[],
    private readonly log: Logger,
    private readonly encryption?: NodeEncryption,
    /** Where routes go (tests: a namespace of their own). */
    options: { ip?: Ip } = {},
  ) {
    this.ip = options.ip ?? new Ip();
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
    this.underlayCidrs = this.config.underlayCidrs ?? (await this.discoverUnderlay());
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

  /**
   * The network of the address holding nodeIp: remote pod CIDRs must stay out of it, and no
   * route to a pod CIDR may replace it. Just the node IP when no address holds it (yet).
   */
  private async discoverUnderlay(): Promise<string[]> {
    try {
      const links = JSON.parse(await this.ip.run(['-j', '-4', 'addr', 'show'])) as Array<{ addr_info?: Array<{ local?: string; prefixlen?: number }> }>;
      for (const l of links) {
        const a = (l.addr_info ?? []).find((x) => x.local === this.config.nodeIp);
        if (a?.prefixlen === undefined) continue;
        const bits = a.prefixlen;
        return [formatCidr({ addr: (parseIpv4(this.config.nodeIp)! & prefixMask(bits)) >>> 0, bits })];
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'cannot read the underlay network; only the node IP is protected');
    }
    return [`${this.config.nodeIp}/32`];
  }

  /** The endpoint (local cluster or remote) holding `ip`. */
  endpointByIp(ip: string): EndpointRecord | undefined {
    return this.endpoints.get(ip) ?? this.admitted().byIp.get(ip);
  }

  /** Remote nodes this node uses (admitted), keyed `<remote>/<node>`. */
  admittedRemoteNodes(): ReadonlyMap<string, NodeRecord> {
    return this.admitted().nodes;
  }

  /** Remote endpoints this node uses (admitted), keyed `<remote>/<ip>`. */
  admittedRemoteEndpoints(): ReadonlyMap<string, EndpointRecord> {
    return this.admitted().endpoints;
  }

  /** Admitted remote endpoints grouped by their cluster. */
  remoteEndpointsByCluster(): Map<string, EndpointRecord[]> {
    const out = new Map<string, EndpointRecord[]>();
    for (const [id, e] of this.admitted().endpoints) {
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
    if (kind === 'cluster') {
      if (key !== 'info') return;
      const before = this.remoteClusterIds.get(remote);
      if (type === 'delete') this.remoteClusterIds.delete(remote);
      else this.accept(`${MESH_ROOT}${path}`, parseClusterInfo(value, this.config.clusterId), (clusterId) => this.remoteClusterIds.set(remote, clusterId));
      if (this.remoteClusterIds.get(remote) !== before) this.schedule();
      return;
    }
    if (kind === 'identities') {
      // Only an identity of a remote's own range, labelled with its cluster: never a reserved
      // one, never one of ours (policy would select it as if it were ours).
      const n = parseIdentity(key);
      const problem = n === undefined ? `identity ${JSON.stringify(key)} is not an identity` : clusterIdOf(n) === 0 || localIdOf(n) < LOCAL_ID_MIN ? `identity ${n} is reserved; a remote cannot define it` : clusterIdOf(n) === this.config.clusterId ? `identity ${n} is in this cluster's range` : undefined;
      if (type === 'delete') {
        if (n !== undefined && !problem && this.remoteIdentities.get(n)?.get(CLUSTER_LABEL) === remote) this.remoteIdentities.delete(n);
        this.invalid.delete(`${MESH_ROOT}${path}`);
      } else if (problem) {
        this.reject(`${MESH_ROOT}${path}`, problem);
      } else {
        try {
          const labels = LabelSet.fromCanonical(value.toString());
          if (labels.get(CLUSTER_LABEL) !== remote) throw new Error(`identity ${n} carries ${CLUSTER_LABEL}=${labels.get(CLUSTER_LABEL) ?? '(none)'}, not ${remote}`);
          const held = this.remoteIdentities.get(n!);
          if (held && held.get(CLUSTER_LABEL) !== remote) throw new Error(`identity ${n} is already defined by ${held.get(CLUSTER_LABEL)}`);
          this.remoteIdentities.set(n!, labels);
          this.invalid.delete(`${MESH_ROOT}${path}`);
        } catch (err) {
          this.reject(`${MESH_ROOT}${path}`, (err as Error).message);
        }
      }
      this.onRemoteIdentities();
      // Endpoints are admitted with their identity: the ipcache follows.
      this.schedule();
      return;
    }
    if (kind === 'nodes') {
      let keysOnly = false;
      if (type === 'delete') this.remoteNodes.delete(id);
      else {
        const parsed = parseNodeRecord(value, remote);
        this.accept(`${MESH_ROOT}${path}`, typeof parsed !== 'string' && parsed.name !== key ? `node record ${parsed.name} stored under ${key}` : parsed, (r) => {
          keysOnly = onlyKeysChanged(this.remoteNodes.get(id), r);
          this.remoteNodes.set(id, r);
          // Admission does not look at keys: an admitted node stays admitted, with its new keys.
          if (keysOnly && this.admittedCache?.nodes.has(id)) this.admittedCache.nodes.set(id, r);
        });
      }
      if (keysOnly) return this.scheduleKeys();
    } else if (kind === 'services') {
      if (type === 'delete') this.remoteServices.delete(id);
      else this.accept(`${MESH_ROOT}${path}`, parseServiceRecord(key, value.toString()), (r) => this.remoteServices.set(id, r));
    } else if (kind === 'endpoints') {
      if (type === 'delete') this.remoteEndpoints.delete(id);
      else {
        const parsed = parseRemoteEndpoint(value);
        this.accept(`${MESH_ROOT}${path}`, typeof parsed !== 'string' && parsed.ip !== key ? `endpoint ${parsed.ip} stored under ${key}` : parsed, (r) => this.remoteEndpoints.set(id, r), () => this.remoteEndpoints.delete(id));
      }
    } else return;
    this.schedule();
  }

  private reject(key: string, reason: string): void {
    if (this.invalid.get(key) !== reason) this.log.warn({ key, reason }, 'skipped invalid cluster record');
    this.invalid.set(key, reason);
  }

  /**
   * The remote records to use, against local state and each other; never dependent on the
   * order the watch delivered them in, so every node of the cluster admits the same ones.
   * Computed when something changed, then kept.
   */
  private admitted(): Admitted {
    if (this.admittedCache) return this.admittedCache;
    const me = { name: this.config.node, ip: this.config.nodeIp, podCidr: this.config.podCidr };
    const local = new LocalAddresses({ nodes: [...this.nodes.values(), ...(me.podCidr ? [me] : [])], underlayCidrs: this.underlayCidrs, serviceCidrs: serviceCidrsOf(this.config) });
    const claims = new RemoteClaims();
    const minPodCidrBits = this.config.remotePodCidrMinBits ?? DEFAULT_MIN_POD_CIDR_BITS;
    const out: Admitted = { nodes: new Map(), endpoints: new Map(), byIp: new Map(), refused: new Map() };
    const keyOf = (id: string, kind: string): string => `${MESH_ROOT}${id.slice(0, id.indexOf('/'))}/${kind}/${id.slice(id.indexOf('/') + 1)}`;
    // Nodes that pass against local state; then those that collide with one another are all
    // refused (the importer lets no collision through, so one here was written past it).
    const candidates: Array<[string, string, NodeRecord]> = [];
    for (const id of [...this.remoteNodes.keys()].sort()) {
      const remote = id.slice(0, id.indexOf('/'));
      const n = this.remoteNodes.get(id)!;
      const problem = remoteNodeProblem(remote, n, { local, claims, minPodCidrBits });
      if (problem) out.refused.set(keyOf(id, 'nodes'), problem);
      else candidates.push([id, remote, n]);
    }
    for (const [, remote, n] of candidates) claims.claim(remote, n);
    for (const [id, remote, n] of candidates) {
      const problem = remoteNodeProblem(remote, n, { local, claims, minPodCidrBits });
      if (problem) out.refused.set(keyOf(id, 'nodes'), problem);
      else out.nodes.set(id, n);
    }
    // Endpoints need no order: two admitted nodes never share an address, so neither do their endpoints.
    for (const [id, e] of this.remoteEndpoints) {
      const remote = id.slice(0, id.indexOf('/'));
      const node = out.nodes.get(`${remote}/${e.node}`);
      const owner = this.remoteIdentities.get(e.identity)?.get(CLUSTER_LABEL);
      const problem = !node
        ? `endpoint ${e.ip}'s node ${remote}/${e.node} is unknown or refused`
        : remoteEndpointProblem(e, node, undefined, this.config.clusterId) ??
          (owner !== remote ? `endpoint ${e.ip}'s identity ${e.identity} is not an identity of ${remote}${owner ? ` (it is ${owner}'s)` : ''}` : undefined) ??
          (this.endpoints.has(e.ip) ? `endpoint ${e.ip} is a local endpoint` : undefined) ??
          (out.byIp.has(e.ip) ? `endpoint ${e.ip} is already an endpoint of ${out.byIp.get(e.ip)!.node}` : undefined);
      if (problem) out.refused.set(keyOf(id, 'endpoints'), problem);
      else {
        out.endpoints.set(id, e);
        out.byIp.set(e.ip, e);
      }
    }
    for (const [key, reason] of out.refused) if (this.refused.get(key) !== reason) this.log.warn({ key, reason }, 'refused a remote cluster record');
    this.refused = out.refused;
    this.admittedCache = out;
    return out;
  }

  /** Stores a record that parsed; otherwise reports it and (`drop`) forgets the key's previous value. */
  private accept<T>(key: string, parsed: T | string, store: (r: T) => void, drop?: () => void): void {
    if (typeof parsed === 'string') {
      this.invalid.set(key, parsed);
      this.log.warn({ key, reason: parsed }, 'skipped invalid cluster record');
      drop?.();
      return;
    }
    this.invalid.delete(key);
    store(parsed);
  }

  /** Resync the ipcache soon (changes arriving together are written together). */
  schedule(): void {
    this.ipcacheDirty = true;
    this.admittedCache = undefined;
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
    for (const [id, record] of this.admitted().nodes) out.push({ cluster: id.slice(0, id.indexOf('/')), record });
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
    const cidrs = this.cidrIdentities();
    for (const c of cidrs) out.push({ cidr: c.cidr, identity: c.id, flags: 0, clusterId: 0 });
    // Remote clusters: their nodes and pods, reached through the remote node (tunnel) or routes.
    // Only what admission let through, and never over a local entry: local state always wins.
    const local = new Set(out.map((e) => e.cidr));
    const admitted = this.admitted();
    const remote: IpcacheUpsert[] = [];
    for (const [id, n] of admitted.nodes) remote.push({ cidr: `${n.ip}/32`, identity: ReservedIdentity['remote-node'], flags: IPCACHE_F_REMOTE_NODE, clusterId: this.remoteClusterIds.get(id.slice(0, id.indexOf('/'))) ?? 0 });
    for (const e of admitted.endpoints.values()) remote.push({ cidr: `${e.ip}/32`, identity: e.identity, clusterId: (e.identity >>> 16) & 0xff, ...this.remotePlacement(e.nodeIp, byIp) });
    for (const r of remote) {
      if (local.has(r.cidr)) this.refused.set(`ipcache/${r.cidr}`, `a remote entry for ${r.cidr} would replace a local one`);
      else out.push(r);
    }
    return out;
  }

  /** The addresses other nodes send tunnel packets from, and who they are (see node-addresses.ts). */
  desiredNodes(): NodeAddressUpsert[] {
    const nodes = this.allNodes().map((n) => ({ ...n, clusterId: n.cluster === this.config.cluster ? this.config.clusterId : this.remoteClusterIds.get(n.cluster) ?? 0 }));
    const { entries, conflicts } = nodeAddresses(nodes, {
      me: `${this.config.cluster}/${this.config.node}`,
      encryption: this.config.encryption,
      strict: this.config.encryptionStrict,
      encrypted: new Set(this.encryptedNodes.keys()),
    });
    const known = new Set(this.nodeAddressConflicts.map((c) => `${c.addr} ${c.nodes.join()}`));
    for (const c of conflicts) if (!known.has(`${c.addr} ${c.nodes.join()}`)) this.log.warn({ addr: c.addr, nodes: c.nodes }, 'an address claimed by several nodes: tunnel packets from it are refused');
    this.nodeAddressConflicts = conflicts;
    return entries;
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
        await this.datapath.syncNodes(this.desiredNodes());
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

  /** What a route to a pod CIDR may never overlap: the underlay, the service range, this node's pods, any local node's IP. */
  private routeGuard(): CidrSet<string> {
    const guard = new CidrSet<string>();
    const add = (text: string, what: string): void => {
      const c = parseCidr(text);
      if (typeof c !== 'string') guard.add(c, what);
    };
    for (const c of this.underlayCidrs) add(c, `the underlay ${c}`);
    for (const c of serviceCidrsOf(this.config)) add(c, `the service CIDR ${c}`);
    if (this.config.podCidr) add(this.config.podCidr, `this node's pod CIDR ${this.config.podCidr}`);
    add(`${this.config.nodeIp}/32`, `this node's IP ${this.config.nodeIp}`);
    for (const n of this.nodes.values()) add(`${n.ip}/32`, `node ${n.name}'s IP ${n.ip}`);
    return guard;
  }

  /**
   * Routes to other nodes' pod CIDRs: as the encryption says for peers (into a WireGuard device, or via the node where IPsec policies apply)
   * (both routing modes: VXLAN packets go to the peer's router IP inside its
   * pod CIDR); via the node in direct routing without encryption, or when
   * encryption is not strict and the node has no key; none otherwise.
   */
  private async syncRoutes(): Promise<void> {
    const want = new Map<string, string>();
    const guard = this.routeGuard();
    for (const n of this.allNodes()) {
      if (n.cluster === this.config.cluster && n.record.name === this.config.node) continue;
      const route = this.encryptedNodes.get(`${n.cluster}/${n.record.name}`);
      const wanted = route ?? (this.config.routing === 'direct' && (this.config.encryption === 'off' || !this.config.encryptionStrict) ? `via ${n.record.ip}` : undefined);
      if (wanted === undefined) continue;
      // Last line of defence, for every node (a local record can be wrong too): a route to a pod
      // CIDR never replaces or cuts into the underlay, the service range or this node's own pods.
      const c = parseCidr(n.record.podCidr);
      const hit = typeof c === 'string' ? { value: c } : guard.overlapping(c);
      if (hit) {
        this.refused.set(`route/${n.cluster}/${n.record.name}`, `no route to pod CIDR ${n.record.podCidr}: it overlaps ${hit.value}`);
        continue;
      }
      want.set(n.record.podCidr, wanted);
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

/** An endpoint record of any cluster (admission checks its identity against the remote's). */
function parseRemoteEndpoint(value: Buffer): EndpointRecord | string {
  let identity: unknown;
  try {
    identity = (JSON.parse(value.toString()) as { identity?: unknown } | null)?.identity;
  } catch {
    return 'not JSON';
  }
  return parseEndpointRecord(value, typeof identity === 'number' ? clusterIdOf(identity) : -1);
}

/** The cluster id in a `cluster/info` record: 1-255, and not this cluster's own. */
export function parseClusterInfo(value: Buffer, ownClusterId: number): number | string {
  let doc: { id?: unknown };
  try {
    doc = JSON.parse(value.toString()) as { id?: unknown };
  } catch {
    return 'not JSON';
  }
  const id = typeof doc === 'object' && doc !== null ? doc.id : undefined;
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 1 || id > 255) return `cluster id ${JSON.stringify(id)} is not 1-255`;
  if (id === ownClusterId) return `cluster id ${id} is this cluster's own`;
  return id;
}

/** Whether a node record changed in its encryption part only (keys, epoch, rotation, confirmations). */
function onlyKeysChanged(before: NodeRecord | undefined, after: NodeRecord): boolean {
  if (!before || !(before.wireguard ?? before.ipsec) || !(after.wireguard ?? after.ipsec)) return false;
  return JSON.stringify({ ...before, wireguard: undefined, ipsec: undefined }) === JSON.stringify({ ...after, wireguard: undefined, ipsec: undefined });
}
