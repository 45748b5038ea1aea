/**
 * ClusterState: what the other nodes of the cluster publish (node records and
 * endpoint records), turned into this node's ipcache, its table of node
 * addresses (who may send tunnel packets, node-addresses.ts) and, in
 * direct-routing mode, routes to the other nodes' pod CIDRs. Records are
 * validated; a bad one is skipped and counted, never programmed. When etcd is
 * away the datapath keeps its last state; the watches catch up when it returns.
 *
 * Each store is read by a StoreWatcher (store-watcher.ts), the same type for
 * this cluster's records and for each remote's: a remote's watcher runs while
 * this cluster's clustermesh-apiserver lists the remote (MESH_CLUSTERS_PREFIX),
 * and when the remote is no longer listed every record it had is withdrawn.
 *
 * Remote clusters' records (the mesh cache the clustermesh-apiserver writes)
 * are admitted again here by mesh-admission's rules, whoever wrote them: a
 * remote never takes over a local address, a route or another remote's
 * range, and local state always wins in the ipcache.
 *
 * Every record lands in the Ipcache model (ipcache.ts) under its source, and
 * only the prefixes an event touched are written to the datapath: a node's own
 * endpoints come straight from its endpoint manager (setLocalEndpoint), each
 * endpoint record changes its own prefix, and remote records are admitted one
 * by one (a node's endpoints again when the node's admission changes, an
 * identity's endpoints when the identity changes).
 *
 * Those who derive state from the endpoints in use and the remote services
 * (the ServiceManager) are told each change as a ClusterChange, so they too
 * update only what it touches; ClusterState knows nothing of what they derive.
 *
 * A remote cluster's id comes from this cluster's clustermesh-apiserver, which
 * lists each remote with the id its own configuration gives it
 * (weft/meshclusters/v1/<remote>), never from what the remote sends: it
 * is what a remote node's tunnel packets are held to.
 */
import { Coalescer, formatCidr, prefixMask, type Logger } from '@weft/common';
import { IPCACHE_F_ENCRYPTED, IPCACHE_F_ENCRYPT_MISSING, IPCACHE_F_LOCAL_ENDPOINT, IPCACHE_F_REMOTE_NODE } from '@weft/datapath';
import { CLUSTER_LABEL, LabelSet, ReservedIdentity } from '@weft/identity';
import { PrefixWatcher, type KvClient } from '@weft/kvstore';
import { Ip } from '@weft/net';
import { CidrSet, parseCidr, parseIpv4, type CidrIdentityView } from '@weft/policy';
import type { AgentConfig } from './config.js';
import type { Datapath, IpcacheUpsert, NodeAddressUpsert } from './datapath-port.js';
import { Ipcache } from './ipcache.js';
import { NamedPortIndex } from './named-ports.js';
import { routerIp, serviceCidrsOf } from './config.js';
import type { NodeEncryption, PeerNode } from './encryption.js';
import { nodeAddresses } from './node-addresses.js';
import { DEFAULT_MIN_POD_CIDR_BITS, LocalAddresses, RemoteClaims, remoteEndpointProblem, remoteNodeProblem } from '@weft/schema';
import { CLUSTER_NAME_RE, EndpointOwnership, MESH_CLUSTERS_PREFIX, MESH_ROOT, STATE_ROOT, meshClusterRoot, parseClusterInfo, type ServiceRecord } from '@weft/schema';
import { ENDPOINTS_PREFIX, type EndpointRecord, type NodeRecord } from '@weft/schema';
import { StoreWatcher, type StoreChange } from './store-watcher.js';

/**
 * One change to what ClusterState holds about endpoints and exported services, told as it happens
 * so a consumer keeping state derived from them (ServiceManager) updates only what the change
 * touches. `record` is the new value (undefined: gone); the consumer keeps the old one if it needs it.
 */
export type ClusterChange =
  /** One of this cluster's endpoints (a record that passed the ownership checks), by IP. */
  | { kind: 'local-endpoint'; ip: string; record: EndpointRecord | undefined }
  /** A remote cluster's endpoint that passed admission (or no longer does), by IP. */
  | { kind: 'remote-endpoint'; cluster: string; ip: string; record: EndpointRecord | undefined }
  /** A remote cluster's exported service record, by `<namespace>.<name>`. */
  | { kind: 'remote-service'; cluster: string; key: string; record: ServiceRecord | undefined };

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
  /** Who is at which address, by source and precedence: what the datapath's ipcache is written from. */
  readonly ipcache = new Ipcache();
  /** The named ports of the pods of each identity, from the records in use (this cluster's, admitted remote ones). */
  readonly namedPorts = new NamedPortIndex();
  /** Remote nodes that passed admission (`<remote>/<node>`), remote endpoints that did (`<remote>/<ip>`), and by IP. */
  private readonly admittedNodes = new Map<string, NodeRecord>();
  private readonly admittedEndpoints = new Map<string, EndpointRecord>();
  private readonly admittedByIp = new Map<string, string>();
  /** Remote endpoint ids (`<remote>/<ip>`) by their node (`<remote>/<node>`) and by their identity: who to admit again. */
  private readonly remoteByNode = new Map<string, Set<string>>();
  private readonly remoteByIdentity = new Map<number, Set<string>>();
  private readonly remoteByIp = new Map<string, Set<string>>();
  /** Why remote records are not used, by mesh cache key; routes refused, by `route/<cluster>/<node>`. */
  private readonly refusedRecords = new Map<string, string>();
  private refusedRoutes = new Map<string, string>();
  /** Node admission must run again (remote or local nodes, the underlay or cluster ids changed). */
  private nodesDirty = true;
  /** The node table (weft_nodes) must be written again. */
  private nodeTableDirty = true;
  /** The next ipcache write is a whole one (the first, or after an error). */
  private fullWrite = true;
  /** The CIDR identities last put in the ipcache (the policy engine replaces the array when they change). */
  private cidrsInIpcache: CidrIdentityView[] | undefined;
  /** Node IP -> router IP of each node reached encrypted, from the last encryption sync. */
  private encryptedRouterIp = new Map<string, string>();
  /** The underlay networks (config, else the network of the address holding nodeIp). */
  private underlayCidrs: string[] = [];
  /** Told when remote identities change (policy must be recomputed). */
  onRemoteIdentities: (id: number) => void = () => undefined;
  /**
   * Told of each change to the endpoints in use (this cluster's, admitted remote ones) and to remote
   * services, synchronously, after the maps above reflect it. Node changes reach it as the endpoint
   * changes they cause.
   */
  onChange: (change: ClusterChange) => void = () => undefined;
  /** Records that do not parse (or name another key, cluster or range), by key. */
  private readonly unparsed = new Map<string, string>();
  /** This cluster's store, the list of remotes, and each listed remote's store. */
  private local: StoreWatcher | undefined;
  private registry: PrefixWatcher | undefined;
  private readonly remotes = new Map<string, StoreWatcher>();
  /** Remote stores being stopped (withdrawn already), awaited by stop(). */
  private readonly stopping = new Set<Promise<void>>();
  private readonly syncer: Coalescer;
  /** cidr -> route arguments after the prefix, as installed. */
  private routes = new Map<string, string>();
  /** `cluster/node` of the nodes reached encrypted -> the route their pod CIDR takes, from the last sync. */
  private encryptedNodes = new Map<string, string>();
  private recheck: NodeJS.Timeout | undefined;
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
      onChange: (ip, record) => {
        this.ipcache.set('cluster-endpoint', `${ip}/32`, record && this.clusterEndpointEntry(record));
        this.namedPorts.set(`c/${ip}`, record?.identity, record?.namedPorts);
        this.readmitAt(ip);
        this.onChange({ kind: 'local-endpoint', ip, record });
      },
      onReject: (node, ip, reason) => {
        if (reason !== undefined) this.log.warn({ key: `${ENDPOINTS_PREFIX}${node}/${ip}`, reason }, 'skipped invalid cluster record');
      },
    });
    this.endpoints = this.ownership.accepted;
  }

  async start(): Promise<void> {
    this.underlayCidrs = this.config.underlayCidrs ?? (await this.discoverUnderlay());
    const own = { cluster: this.config.cluster, clusterId: this.config.clusterId, root: STATE_ROOT, local: true };
    this.local = new StoreWatcher(this.kv, own, { change: (c) => this.onLocal(c), invalid: (key, reason) => this.setInvalid(key, reason) }, this.log).start();
    this.registry = new PrefixWatcher(this.kv, MESH_CLUSTERS_PREFIX, { onEvent: (e) => this.onRemoteListed(e.key, e.type === 'delete' ? undefined : e.value) }, { logger: this.log }).start();
    await Promise.all([this.local.waitSynced(), this.registry.waitSynced()]);
    // Each remote listed by now (a remote withdrawn meanwhile counts as done).
    await Promise.all([...this.remotes.values()].map((w) => w.waitSynced()));
    this.schedule();
  }

  async stop(): Promise<void> {
    await Promise.all([this.local?.stop(), this.registry?.stop(), ...[...this.remotes.values()].map((w) => w.stop()), ...this.stopping]);
    clearTimeout(this.recheck);
    await this.syncer.stop();
  }

  /** Records not used because they do not parse or are not their publisher's to claim, by key. */
  get invalid(): Map<string, string> {
    const out = new Map(this.unparsed);
    for (const [path, reason] of this.ownership.rejected) out.set(`${ENDPOINTS_PREFIX}${path}`, reason);
    return out;
  }

  /** Remote clusters whose records are read, with whether their first list has been read. */
  remoteStores(): Array<{ cluster: string; clusterId: number; synced: boolean }> {
    return [...this.remotes.values()].map((w) => ({ cluster: w.source.cluster, clusterId: w.source.clusterId, synced: w.synced }));
  }

  private setInvalid(key: string, reason: string | undefined): void {
    if (reason === undefined) return void this.unparsed.delete(key);
    if (this.unparsed.get(key) !== reason) this.log.warn({ key, reason }, 'skipped invalid cluster record');
    this.unparsed.set(key, reason);
  }

  /** One of this cluster's own records changed. */
  private onLocal(c: StoreChange): void {
    if (c.kind === 'node') {
      const before = this.nodes.get(c.name);
      if (c.record) this.nodes.set(c.name, c.record);
      else this.nodes.delete(c.name);
      // A node without a (valid) record has no place: its endpoints go too.
      this.ownership.setNode(c.name, c.record);
      if (before && c.record && onlyKeysChanged(before, c.record)) return this.scheduleKeys();
      this.setNodeEntry(before, c.record);
      this.nodesDirty = true;
    } else if (c.kind === 'endpoint') {
      this.ownership.setEndpoint(c.node!, c.ip, c.record);
    } else return;
    this.schedule();
  }

  /**
   * This cluster's clustermesh-apiserver listed a remote (with its cluster id), changed its id, or
   * stopped listing it (`value` undefined). The remote's store is read while it is listed with a
   * valid id; otherwise everything it had is withdrawn at once.
   */
  private onRemoteListed(key: string, value: Buffer | undefined): void {
    const remote = key.slice(MESH_CLUSTERS_PREFIX.length);
    const parsed = value === undefined ? undefined : !CLUSTER_NAME_RE.test(remote) ? `remote ${JSON.stringify(remote)} is not a cluster name` : remote === this.config.cluster ? 'a remote cannot be this cluster' : parseClusterInfo(value, this.config.clusterId);
    this.setInvalid(key, typeof parsed === 'string' ? parsed : undefined);
    const clusterId = typeof parsed === 'number' ? parsed : undefined;
    const running = this.remotes.get(remote);
    if (running && running.source.clusterId === clusterId) return;
    if (running) {
      this.remotes.delete(remote);
      const stopped = running.stop({ withdraw: true }).catch((err) => this.log.error({ remote, err: (err as Error).message }, 'cannot stop watching a remote'));
      this.stopping.add(stopped);
      void stopped.then(() => this.stopping.delete(stopped));
      for (const k of [...this.unparsed.keys()]) if (k.startsWith(meshClusterRoot(remote))) this.unparsed.delete(k);
    }
    if (clusterId === undefined) this.remoteClusterIds.delete(remote);
    else {
      this.remoteClusterIds.set(remote, clusterId);
      const source = { cluster: remote, clusterId, root: meshClusterRoot(remote), local: false };
      this.remotes.set(remote, new StoreWatcher(this.kv, source, { change: (c) => this.onRemote(remote, c), invalid: (k, reason) => this.setInvalid(k, reason) }, this.log).start());
    }
    this.nodesDirty = true; // remote nodes carry their cluster's id
    this.schedule();
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
    const remote = this.admittedByIp.get(ip);
    return this.endpoints.get(ip) ?? (remote === undefined ? undefined : this.admittedEndpoints.get(remote));
  }

  /** Remote nodes this node uses (admitted), keyed `<remote>/<node>`. */
  admittedRemoteNodes(): ReadonlyMap<string, NodeRecord> {
    return this.admittedNodes;
  }

  /** Remote endpoints this node uses (admitted), keyed `<remote>/<ip>`. */
  admittedRemoteEndpoints(): ReadonlyMap<string, EndpointRecord> {
    return this.admittedEndpoints;
  }

  /** Remote records and routes not used, with the reason (status: invalidRecords), and remote claims local state beats. */
  get refused(): Map<string, string> {
    const out = new Map([...this.refusedRecords, ...this.refusedRoutes]);
    for (const [cidr, reason] of this.ipcache.shadowed()) out.set(`ipcache/${cidr}`, reason);
    return out;
  }

  /**
   * One of this node's endpoints, straight from its endpoint manager: in the ipcache at once, not
   * after the round trip through etcd its record takes (removed: undefined).
   */
  setLocalEndpoint(ip: string, identity: number | undefined): void {
    this.ipcache.set('local-endpoint', `${ip}/32`, identity === undefined ? undefined : { cidr: `${ip}/32`, identity, flags: IPCACHE_F_LOCAL_ENDPOINT, clusterId: this.config.clusterId });
    this.readmitAt(ip);
    this.syncer.schedule();
  }

  /** One of a listed remote's records changed (admitted here again, whoever wrote it). */
  private onRemote(remote: string, c: StoreChange): void {
    if (c.kind === 'identity') {
      const held = this.remoteIdentities.get(c.id);
      if (c.labels) {
        const owner = held?.get(CLUSTER_LABEL);
        if (owner !== undefined && owner !== remote) return this.setInvalid(c.key, `identity ${c.id} is already defined by ${owner}`);
        this.remoteIdentities.set(c.id, c.labels);
      } else if (held?.get(CLUSTER_LABEL) === remote) this.remoteIdentities.delete(c.id);
      else return;
      this.onRemoteIdentities(c.id);
      // Endpoints are admitted with their identity: those carrying it are looked at again.
      for (const id of [...(this.remoteByIdentity.get(c.id) ?? [])]) this.admitEndpoint(id);
    } else if (c.kind === 'node') {
      const id = `${remote}/${c.name}`;
      const before = this.remoteNodes.get(id);
      if (c.record) this.remoteNodes.set(id, c.record);
      else this.remoteNodes.delete(id);
      if (before && c.record && onlyKeysChanged(before, c.record)) {
        // Admission does not look at keys: an admitted node stays admitted, with its new keys.
        if (this.admittedNodes.has(id)) this.admittedNodes.set(id, c.record);
        return this.scheduleKeys();
      }
      this.nodesDirty = true;
    } else if (c.kind === 'service') {
      const id = `${remote}/${c.name}`;
      if (c.record) this.remoteServices.set(id, c.record);
      else if (!this.remoteServices.delete(id)) return;
      this.onChange({ kind: 'remote-service', cluster: remote, key: c.name, record: c.record });
    } else {
      const id = `${remote}/${c.ip}`;
      this.unindex(id);
      if (c.record) this.remoteEndpoints.set(id, c.record);
      else this.remoteEndpoints.delete(id);
      this.index(id);
      this.admitEndpoint(id);
    }
    this.schedule();
  }

  /** Indexes remote endpoint `id` by its node and identity (what its admission depends on). */
  private index(id: string): void {
    const e = this.remoteEndpoints.get(id);
    if (!e) return;
    const node = `${id.slice(0, id.indexOf('/'))}/${e.node}`;
    addTo(this.remoteByNode, node, id);
    addTo(this.remoteByIdentity, e.identity, id);
    addTo(this.remoteByIp, e.ip, id);
  }

  private unindex(id: string): void {
    const e = this.remoteEndpoints.get(id);
    if (!e) return;
    removeFrom(this.remoteByNode, `${id.slice(0, id.indexOf('/'))}/${e.node}`, id);
    removeFrom(this.remoteByIdentity, e.identity, id);
    removeFrom(this.remoteByIp, e.ip, id);
  }

  /** A local endpoint came or went at `ip`: a remote record for it is admitted again (local state wins). */
  private readmitAt(ip: string): void {
    for (const id of [...(this.remoteByIp.get(ip) ?? [])]) this.admitEndpoint(id);
  }

  /**
   * Admits the remote nodes against local state and each other, never dependent on the order the
   * watch delivered them in, so every node of the cluster admits the same ones; the endpoints of
   * each node whose admission changed are admitted again.
   */
  private admitNodes(): void {
    const me = { name: this.config.node, ip: this.config.nodeIp, podCidr: this.config.podCidr };
    const local = new LocalAddresses({ nodes: [...this.nodes.values(), ...(me.podCidr ? [me] : [])], underlayCidrs: this.underlayCidrs, serviceCidrs: serviceCidrsOf(this.config) });
    const claims = new RemoteClaims();
    const minPodCidrBits = this.config.remotePodCidrMinBits ?? DEFAULT_MIN_POD_CIDR_BITS;
    const refused = new Map<string, string>();
    const admitted = new Map<string, NodeRecord>();
    // Nodes that pass against local state; then those that collide with one another are all
    // refused (the importer lets no collision through, so one here was written past it).
    const candidates: Array<[string, string, NodeRecord]> = [];
    for (const id of [...this.remoteNodes.keys()].sort()) {
      const remote = id.slice(0, id.indexOf('/'));
      const n = this.remoteNodes.get(id)!;
      const problem = remoteNodeProblem(remote, n, { local, claims, minPodCidrBits });
      if (problem) refused.set(id, problem);
      else candidates.push([id, remote, n]);
    }
    for (const [, remote, n] of candidates) claims.claim(remote, n);
    for (const [id, remote, n] of candidates) {
      const problem = remoteNodeProblem(remote, n, { local, claims, minPodCidrBits });
      if (problem) refused.set(id, problem);
      else admitted.set(id, n);
    }
    const changed = new Set<string>();
    for (const [id, n] of this.admittedNodes) if (admitted.get(id) !== n) changed.add(id);
    for (const [id, n] of admitted) if (this.admittedNodes.get(id) !== n) changed.add(id);
    for (const id of this.remoteNodes.keys()) this.setRefused(meshKey(id, 'nodes'), refused.get(id));
    for (const key of [...this.refusedRecords.keys()]) if (key.includes('/nodes/') && !this.remoteNodes.has(idOfKey(key))) this.setRefused(key, undefined);
    this.admittedNodes.clear();
    for (const [id, n] of admitted) this.admittedNodes.set(id, n);
    this.ipcache.replace('remote-node', [...admitted].map(([id, n]) => ({ cidr: `${n.ip}/32`, identity: ReservedIdentity['remote-node'], flags: IPCACHE_F_REMOTE_NODE, clusterId: this.remoteClusterIds.get(id.slice(0, id.indexOf('/'))) ?? 0 })));
    for (const node of changed) for (const id of [...(this.remoteByNode.get(node) ?? [])]) this.admitEndpoint(id);
    this.nodeTableDirty = true; // (cluster ids may have changed too; the table is small)
  }

  /** Admits one remote endpoint (`<remote>/<ip>`) by mesh-admission's rules, or withdraws it. */
  private admitEndpoint(id: string): void {
    const before = this.admittedEndpoints.get(id);
    this._admitEndpoint(id, before);
    const after = this.admittedEndpoints.get(id);
    // Admitting again what is already admitted (the same record) is no change.
    if (after !== before) this.onChange({ kind: 'remote-endpoint', cluster: id.slice(0, id.indexOf('/')), ip: id.slice(id.indexOf('/') + 1), record: after });
  }

  private _admitEndpoint(id: string, before: EndpointRecord | undefined): void {
    const e = this.remoteEndpoints.get(id);
    if (before) {
      this.admittedEndpoints.delete(id);
      if (this.admittedByIp.get(before.ip) === id) this.admittedByIp.delete(before.ip);
      this.ipcache.set('remote-endpoint', `${before.ip}/32`, undefined);
      this.namedPorts.set(`r/${id}`, undefined, undefined);
    }
    if (!e) return this.setRefused(meshKey(id, 'endpoints'), undefined);
    const remote = id.slice(0, id.indexOf('/'));
    const node = this.admittedNodes.get(`${remote}/${e.node}`);
    const owner = this.remoteIdentities.get(e.identity)?.get(CLUSTER_LABEL);
    const holder = this.admittedByIp.get(e.ip);
    const problem = !node
      ? `endpoint ${e.ip}'s node ${remote}/${e.node} is unknown or refused`
      : remoteEndpointProblem(e, node, undefined, this.config.clusterId) ??
        (owner !== remote ? `endpoint ${e.ip}'s identity ${e.identity} is not an identity of ${remote}${owner ? ` (it is ${owner}'s)` : ''}` : undefined) ??
        (this.endpoints.has(e.ip) || this.ipcache.claimsOf('local-endpoint').has(`${e.ip}/32`) ? `endpoint ${e.ip} is a local endpoint` : undefined) ??
        // Admitted nodes' pod CIDRs never overlap, so this is a record written past the importer.
        (holder !== undefined && holder !== id ? `endpoint ${e.ip} is already an endpoint of ${this.admittedEndpoints.get(holder)!.node}` : undefined);
    this.setRefused(meshKey(id, 'endpoints'), problem);
    if (problem) return;
    this.admittedEndpoints.set(id, e);
    this.admittedByIp.set(e.ip, id);
    this.namedPorts.set(`r/${id}`, e.identity, e.namedPorts);
    // Local state wins by precedence (a local endpoint or node at this address): ipcache.ts.
    this.ipcache.set('remote-endpoint', `${e.ip}/32`, { cidr: `${e.ip}/32`, identity: e.identity, clusterId: (e.identity >>> 16) & 0xff, ...this.remotePlacement(e.nodeIp) });
  }

  private setRefused(key: string, reason: string | undefined): void {
    if (reason === undefined) {
      this.refusedRecords.delete(key);
      return;
    }
    if (this.refusedRecords.get(key) !== reason) this.log.warn({ key, reason }, 'refused a remote cluster record');
    this.refusedRecords.set(key, reason);
  }

  /** Write the changes soon (changes arriving together are written together). */
  schedule(): void {
    this.syncer.schedule();
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
    for (const [id, record] of this.admittedNodes) out.push({ cluster: id.slice(0, id.indexOf('/')), record });
    return out;
  }

  /** A local node's address: host for this node, remote-node for the others. */
  private setNodeEntry(before: NodeRecord | undefined, after: NodeRecord | undefined): void {
    if (before && before.ip !== after?.ip) this.ipcache.set('node', `${before.ip}/32`, undefined);
    if (after) this.ipcache.set('node', `${after.ip}/32`, { cidr: `${after.ip}/32`, identity: after.name === this.config.node ? ReservedIdentity.host : ReservedIdentity['remote-node'], flags: IPCACHE_F_REMOTE_NODE, clusterId: this.config.clusterId });
    this.nodeTableDirty = true;
  }

  /** An endpoint of this cluster, as its record says: on this node, or reached through its node. */
  private clusterEndpointEntry(e: EndpointRecord): IpcacheUpsert {
    if (e.node === this.config.node) return { cidr: `${e.ip}/32`, identity: e.identity, flags: IPCACHE_F_LOCAL_ENDPOINT, clusterId: this.config.clusterId };
    return { cidr: `${e.ip}/32`, identity: e.identity, clusterId: this.config.clusterId, ...this.remotePlacement(e.nodeIp) };
  }

  /**
   * Where a pod on another node is sent: encrypted (through WireGuard or ESP as
   * it is, with no tunnel header: the peer's allowed IPs or the XFRM policy's
   * template vouch for its source and the receiver's ipcache gives its
   * identity), in the clear (encryption off, or not
   * strict and no key), or nowhere (strict and no key: the datapath drops and
   * reports). The router IP stays the entry's node address either way: what
   * arrives in the clear from it is refused.
   */
  private remotePlacement(nodeIp: string): { tunnelIp: string; flags: number } {
    if (this.config.encryption === 'off') return { tunnelIp: nodeIp, flags: 0 };
    const router = this.encryptedRouterIp.get(nodeIp);
    if (router) return { tunnelIp: router, flags: IPCACHE_F_ENCRYPTED };
    return { tunnelIp: nodeIp, flags: this.config.encryptionStrict ? IPCACHE_F_ENCRYPT_MISSING : 0 };
  }

  /** The ipcache this node should have now. */
  desired(): IpcacheUpsert[] {
    return this.ipcache.entries();
  }

  /** Places every endpoint of another node again (which nodes are reached encrypted changed). */
  private replaceAll(): void {
    for (const e of this.endpoints.values()) this.ipcache.set('cluster-endpoint', `${e.ip}/32`, this.clusterEndpointEntry(e));
    // (A copy: admitting again re-inserts the key, which a live iteration would meet again, forever.)
    for (const id of [...this.admittedEndpoints.keys()]) this.admitEndpoint(id);
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
    if (this.nodesDirty) {
      this.nodesDirty = false;
      this.admitNodes();
    }
    if (this.encryption) {
      const before = [...this.encryptedNodes.keys()].join();
      ({ routes: this.encryptedNodes, recheck } = await this.encryption.sync(this.allNodes()));
      if ([...this.encryptedNodes.keys()].join() !== before) {
        this.encryptedRouterIp = new Map();
        for (const n of this.allNodes()) if (this.encryptedNodes.has(`${n.cluster}/${n.record.name}`)) this.encryptedRouterIp.set(n.record.ip, routerIp(n.record.podCidr));
        this.replaceAll();
        this.nodeTableDirty = true;
      }
    }
    const cidrs = this.cidrIdentities();
    if (cidrs !== this.cidrsInIpcache) {
      this.ipcache.replace('policy-cidr', cidrs.map((c) => ({ cidr: c.cidr, identity: c.id, flags: 0, clusterId: 0 })));
      this.cidrsInIpcache = cidrs;
    }
    const changes = this.ipcache.takeChanges();
    try {
      if (this.fullWrite) {
        // The first write (a restarted agent's pinned map may hold what is gone), or after an error.
        this.fullWrite = false;
        this.lastSync = { ...(await this.datapath.syncIpcache(this.ipcache.entries())), at: new Date().toISOString() };
      } else if (changes.length > 0) {
        this.lastSync = { ...(await this.datapath.updateIpcache(changes)), at: new Date().toISOString() };
      }
      if (this.nodeTableDirty) {
        this.nodeTableDirty = false;
        await this.datapath.syncNodes(this.desiredNodes());
      }
    } catch (err) {
      this.fullWrite = true;
      this.nodeTableDirty = true;
      throw err;
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
    const refusedRoutes = new Map<string, string>();
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
        refusedRoutes.set(`route/${n.cluster}/${n.record.name}`, `no route to pod CIDR ${n.record.podCidr}: it overlaps ${hit.value}`);
        continue;
      }
      want.set(n.record.podCidr, wanted);
    }
    for (const [key, reason] of refusedRoutes) if (this.refusedRoutes.get(key) !== reason) this.log.warn({ key, reason }, 'refused a route');
    this.refusedRoutes = refusedRoutes;
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

function meshKey(id: string, kind: string): string {
  return `${MESH_ROOT}${id.slice(0, id.indexOf('/'))}/${kind}/${id.slice(id.indexOf('/') + 1)}`;
}

/** `<remote>/<key>` of a mesh cache key `weft/mesh/v1/<remote>/<kind>/<key>`. */
function idOfKey(key: string): string {
  const [remote, , ...rest] = key.slice(MESH_ROOT.length).split('/');
  return `${remote}/${rest.join('/')}`;
}

function addTo<K>(index: Map<K, Set<string>>, key: K, id: string): void {
  let set = index.get(key);
  if (!set) index.set(key, (set = new Set()));
  set.add(id);
}

function removeFrom<K>(index: Map<K, Set<string>>, key: K, id: string): void {
  const set = index.get(key);
  if (!set) return;
  set.delete(id);
  if (set.size === 0) index.delete(key);
}

/** Whether a node record changed in its encryption part only (keys, epoch, rotation, confirmations). */
function onlyKeysChanged(before: NodeRecord | undefined, after: NodeRecord): boolean {
  if (!before || !(before.wireguard ?? before.ipsec) || !(after.wireguard ?? after.ipsec)) return false;
  return JSON.stringify({ ...before, wireguard: undefined, ipsec: undefined }) === JSON.stringify({ ...after, wireguard: undefined, ipsec: undefined });
}
