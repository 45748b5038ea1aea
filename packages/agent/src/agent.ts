/**
 * The agent: one per node, and the composition root of its parts:
 *   infrastructure  etcd client, session (lease), identity allocator, resources
 *   control plane   endpoints, cluster state (ipcache), policy engine, flows
 *   datapath        injected (BPF in production, in memory for control-plane tests)
 * Every part has start/stop; nothing is a module-level singleton.
 *
 * Resources come from the cluster's etcd (standalone) or from the Kubernetes
 * API server (config `source: kubernetes`); the control plane sees the same
 * ResourceSource either way. In kubernetes mode the pod CIDR is read from the
 * Node before anything uses it, and the node record is also published as the
 * status of the node's WeftNode (the kvstore record stays the one agents and
 * the clustermesh sync from).
 *
 * The API socket opens first and answers GET /v1/healthz (health.ts) while the
 * agent starts; every other route answers 503 WEFT_ERR_AGENT_STARTING until
 * start() has finished.
 */
import { join } from 'node:path';
import { Coalescer, createLogger, type HealthReport, type Logger } from '@weft/common';
import { IdentityAllocator } from '@weft/identity';
import { KvClient, Session } from '@weft/kvstore';
import { KubernetesSource, type WeftNodePublisher } from '@weft/kubernetes';
import { ResourceStore, type ResourceSource } from '@weft/resources';
import { ApiError, ApiServer } from './api.js';
import { CNI_ERROR, cniArgsProblem, isCniCommand, quote } from './cni-args.js';
import { agentHealth } from './health.js';
import { ClusterState } from './cluster-state.js';
import { conntrackConfig, podCidrProblem, readEtcdTls, type AgentConfig } from './config.js';
import { ConntrackGc, type ConntrackGcStatus } from './conntrack-gc.js';
import { PolicyRevisions } from './revisions.js';
import { CidrIdentities } from './cidr-identities.js';
import type { Datapath } from './datapath-port.js';
import { DROP_CT_FULL, DROP_CT_QUOTA } from '@weft/datapath';
import { EndpointManager, type CniArgs, type Endpoint } from './endpoint-manager.js';
import { enrich, FlowLog, type FlowFilter } from './flows.js';
import { Ipam } from './ipam.js';
import { PolicyEngine } from './policy-engine.js';
import { ServiceManager } from './service-manager.js';
import type { EncryptionStatus, NodeEncryption } from './encryption.js';
import { IpsecNode } from './ipsec-node.js';
import { WireGuardNode } from './wireguard-node.js';
import { AgentConfigError, CniRequestError, RotationInProgressError, RotationUnavailableError } from './errors.js';
import { nodeKey, type NodeRecord } from '@weft/schema';
import { bigintJson } from './api.js';

export class Agent {
  readonly log: Logger;
  readonly kv: KvClient;
  readonly flows = new FlowLog();
  allocator!: IdentityAllocator;
  endpoints!: EndpointManager;
  policy!: PolicyEngine;
  cluster!: ClusterState;
  services!: ServiceManager;
  encryption: NodeEncryption | undefined;
  /** Sweeps the conntrack table (conntrack-gc.ts). */
  conntrackGc: ConntrackGc | undefined;
  /** Where the cluster's objects come from: the cluster's etcd (standalone) or the Kubernetes API server. */
  resources!: ResourceSource;
  private session!: Session;
  /** Republishes the node record when its WireGuard part changes (rotation phases, confirmations). */
  private readonly nodePublisher = new Coalescer(() => this.publishNode(), 10, (err) => this.log.error({ err: err.message }, 'cannot publish the node record'));
  private api!: ApiServer;
  /** kubernetes mode: the API server, and this node's WeftNode status. */
  private kube: KubernetesSource | undefined;
  private weftNode: WeftNodePublisher | undefined;
  private readonly abort = new AbortController();
  private readonly bootTimeMs: number;
  private stopped = false;
  /** The start step in progress, for /v1/healthz; undefined once start() has finished. */
  private starting: string | undefined = 'starting';
  /** The resource source's initial lists (policies, Services, EndpointSlices) are done. */
  private resourcesSynced = false;

  constructor(
    readonly config: AgentConfig,
    readonly datapath: Datapath,
    logger?: Logger,
  ) {
    this.log = logger ?? createLogger({ component: 'agent', cluster: config.cluster, node: config.node });
    const tls = readEtcdTls(config);
    this.kv = new KvClient({ endpoints: config.etcd, ...(tls ? { tls } : {}), retry: { maxAttempts: 10, initialMs: 100, maxMs: 2000 } });
    this.bootTimeMs = Date.now() - Number(process.hrtime.bigint() / 1_000_000n);
  }

  get socketPath(): string {
    return join(this.config.stateDir, 'agent.sock');
  }

  async start(): Promise<void> {
    const c = this.config;
    this.api = new ApiServer(this.socketPath);
    this.api.starting = true;
    this.api.route('GET', '/v1/healthz', async () => this.health());
    await this.api.start();
    if (c.source === 'kubernetes') {
      this.starting = `reading the pod CIDR of Node ${c.node}`;
      await this.connectKubernetes();
    }
    this.log.info({ nodeIp: c.nodeIp, podCidr: c.podCidr, routing: c.routing }, 'agent starting');
    this.starting = 'loading the datapath';
    await this.datapath.start();
    if (c.encryption === 'wireguard') this.encryption = new WireGuardNode(c, this.log.child({ component: 'wireguard' }));
    if (c.encryption === 'ipsec') this.encryption = new IpsecNode(c, this.log.child({ component: 'ipsec' }));
    if (this.encryption) {
      this.starting = `starting ${c.encryption} encryption`;
      await this.encryption.start();
    }
    this.starting = 'opening an etcd session';
    this.session = await this.newSession();
    this.starting = 'syncing identities, policies, cluster state and Services';
    // One lease per agent: the identity references live and die with the node's records.
    this.allocator = await new IdentityAllocator({ client: this.kv, clusterId: c.clusterId, clusterName: c.cluster, node: c.node, session: this.session, logger: this.log.child({ component: 'identity-allocator' }) }).start();
    const resources: ResourceSource = this.kube ?? new ResourceStore(this.kv);
    this.resources = resources;
    const ipam = new Ipam(c.podCidr, join(c.stateDir, 'ipam.json'));
    this.endpoints = new EndpointManager({
      config: c,
      kv: this.kv,
      leaseId: () => this.session.leaseId,
      allocator: this.allocator,
      resources,
      ipam,
      datapath: this.datapath,
      onChange: (ep, removed) => this.onEndpointChange(ep, removed),
      log: this.log.child({ component: 'endpoints' }),
    });
    this.policy = new PolicyEngine(c, resources, this.allocator, this.datapath, () => this.endpoints.list(), this.log.child({ component: 'policy' }), () => this.cluster.remoteIdentities.entries());
    // Node-wide and never below what the pinned maps hold: no endpoint sees a revision an old conntrack entry carries.
    const revisions = new PolicyRevisions(join(c.stateDir, 'policy-revisions.json'), await this.datapath.highestPolicyRevision());
    this.policy.nextRevision = () => revisions.next();
    this.policy.cidrs = new CidrIdentities(join(c.stateDir, 'cidr-identities.json'));
    this.cluster = new ClusterState(c, this.kv, this.datapath, () => this.policy.cidrIdentities(), this.log.child({ component: 'cluster-state' }), this.encryption);
    if (this.encryption) {
      this.encryption.onRecordChanged = () => this.nodePublisher.schedule();
      this.encryption.onSyncNeeded = () => this.cluster.schedule();
    }
    this.policy.onCidrsChanged = () => this.cluster.schedule();
    this.cluster.onRemoteIdentities = () => this.policy.schedule();
    this.services = new ServiceManager(c.cluster, resources, this.cluster, this.datapath, this.log.child({ component: 'services' }));
    this.cluster.onChanged = () => this.services.schedule();
    await this.publishNode();
    await this.policy.start();
    await this.cluster.start();
    await this.services.start();
    this.resourcesSynced = true;
    this.starting = 'restoring endpoints';
    for (const ep of this.endpoints.restore()) await this.endpoints.readopt(ep);
    this.starting = 'watching pod and namespace labels';
    await this.endpoints.watchLabels();
    const ct = conntrackConfig(c);
    const { capacity } = await this.datapath.conntrackStatus();
    this.conntrackGc = new ConntrackGc(this.datapath, ct, () => capacity, this.log.child({ component: 'conntrack-gc' }));
    this.conntrackGc.start();
    this.datapath.onFlow((f) => {
      // A connection refused for want of conntrack room: give the room of dead entries back now.
      if (f.dropReason === DROP_CT_FULL || f.dropReason === DROP_CT_QUOTA) this.conntrackGc?.nudge();
    });
    this.datapath.onFlow((s) =>
      this.flows.add(
        enrich(s, {
          node: c.node,
          bootTimeMs: this.bootTimeMs,
          podByIp: (ip) => this.cluster.endpointByIp(ip),
          labelsOf: (id) => this.allocator.lookupById(id) ?? this.cluster.remoteIdentities.get(id),
          ruleName: (id) => this.policy.ruleName(id),
        }),
      ),
    );
    this.routes();
    this.api.starting = false;
    this.starting = undefined;
    this.log.info({ socket: this.socketPath }, 'agent ready');
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.abort.abort();
    await this.api?.stop();
    await this.endpoints?.stop();
    await this.services?.stop();
    await this.cluster?.stop();
    this.encryption?.stop();
    await this.nodePublisher.stop();
    await this.weftNode?.stop();
    await this.policy?.stop();
    await this.conntrackGc?.stop();
    // Keep identities and records alive for a restart: the lease expires on its own if we never come back.
    await this.allocator?.stop({ release: false });
    this.session?.abandon();
    await this.datapath.stop();
    this.kv.close();
    this.log.info('agent stopped');
  }

  /** kubernetes mode: the API server client, and the pod CIDR from this node's Node (waiting for node IPAM). */
  private async connectKubernetes(): Promise<void> {
    const c = this.config;
    this.kube = await KubernetesSource.create({ cluster: c.cluster, logger: this.log, ...(c.kubeconfig !== undefined ? { kubeconfig: c.kubeconfig } : {}) });
    const node = await this.kube.node(c.node, this.abort.signal);
    const problem = podCidrProblem(node.podCidr);
    if (problem) throw new AgentConfigError(`from Node ${c.node}`, `spec.podCIDRs: ${problem}`);
    c.podCidr = node.podCidr;
    this.weftNode = this.kube.weftNodePublisher(node);
  }

  private async newSession(): Promise<Session> {
    const s = await Session.create(this.kv, { ttlSeconds: 10, logger: this.log });
    s.on('lost', () => {
      if (this.stopped) return;
      this.log.warn('agent session lost; re-publishing node and endpoints under a new lease');
      void this.renewSession();
    });
    return s;
  }

  private async renewSession(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      try {
        this.session = await this.newSession();
        this.allocator.useSession(this.session);
        await this.publishNode();
        await this.endpoints.republish();
        return;
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'cannot renew session yet');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  private async publishNode(): Promise<void> {
    const c = this.config;
    const record: NodeRecord = { name: c.node, cluster: c.cluster, ip: c.nodeIp, podCidr: c.podCidr, routing: c.routing };
    this.encryption?.publish(record);
    await this.kv.put(nodeKey(c.node), JSON.stringify(record), { lease: this.session.leaseId });
    this.weftNode?.publish({
      spec: { cluster: c.cluster, clusterId: c.clusterId, nodeIp: c.nodeIp, podCidr: c.podCidr, routing: c.routing },
      status: { ...(record.wireguard ? { wireguard: record.wireguard } : {}), ...(record.ipsec ? { ipsec: record.ipsec } : {}) },
    });
  }

  private async onEndpointChange(ep: Endpoint, removed: boolean): Promise<void> {
    if (removed) {
      this.policy.forget(ep.epId);
      return;
    }
    await this.policy.apply(ep);
  }

  /** CNI entry point, also used directly by tests. */
  async cni(command: string, args: CniArgs): Promise<unknown> {
    // The API is an entry point of its own: the same allow-lists as the plugin, before anything runs.
    if (!isCniCommand(command)) throw new CniRequestError(CNI_ERROR.invalidEnvironment, `Invalid CNI_COMMAND ${quote(command)}: must be ADD, DEL or CHECK`);
    const problem = cniArgsProblem(command, args ?? {});
    if (problem) throw new CniRequestError(problem.code, problem.message);
    switch (command) {
      case 'ADD': {
        const ep = await this.endpoints.add(args);
        return { ip: ep.ip, gateway: '169.254.1.1', hostIf: ep.hostIf, podIf: ep.podIf, mac: ep.mac, identity: ep.identity, netns: ep.netns };
      }
      case 'DEL':
        await this.endpoints.del(args.containerId);
        return {};
      case 'CHECK': {
        const ep = await this.endpoints.check(args.containerId);
        return { ip: ep.ip };
      }
    }
  }

  /** What /v1/healthz answers: only state the agent keeps anyway, so a probe costs no round trip. */
  health(): HealthReport {
    const s = this.session as Session | undefined;
    return agentHealth({
      starting: this.starting,
      encryption: this.config.encryption,
      session: s && { state: s.state, leaseId: s.leaseId, ttlSeconds: s.ttlSeconds },
      source: this.config.source ?? 'standalone',
      resourcesSynced: this.resourcesSynced,
    });
  }

  status(): Record<string, unknown> {
    const c = this.config;
    return {
      cluster: c.cluster,
      clusterId: c.clusterId,
      node: c.node,
      source: c.source ?? 'standalone',
      nodeIp: c.nodeIp,
      podCidr: c.podCidr,
      routing: c.routing,
      encapsulationMtuOverhead: c.routing === 'direct' ? 0 : 50,
      session: this.session.state,
      endpoints: this.endpoints.list().length,
      identities: this.allocator.cache.size,
      policies: this.policy.policyCount,
      clusterNodes: this.cluster.nodes.size,
      clusterEndpoints: this.cluster.endpoints.size,
      // What is used: remote records that passed admission (mesh-admission.ts); the rest is in remoteRefused.
      remoteNodes: this.cluster.admittedRemoteNodes().size,
      remoteEndpoints: this.cluster.admittedRemoteEndpoints().size,
      remoteRefused: this.cluster.refused.size,
      remoteIdentities: this.cluster.remoteIdentities.size,
      // Remote cluster name -> id, as this cluster's clustermesh configuration gives it (tunnel checks hold remote nodes to it).
      remoteClusterIds: Object.fromEntries(this.cluster.remoteClusterIds),
      // Addresses several nodes claim: tunnel packets from them are refused until the conflict is resolved.
      nodeAddressConflicts: this.cluster.nodeAddressConflicts,
      services: this.services.count,
      remoteServices: this.cluster.remoteServices.size,
      memory: memoryMb(),
      lastIpcacheSync: this.cluster.lastSync,
      // A full ipcache: enforcing endpoints drop peers without an exact entry until it is complete.
      ipcache: this.datapath.ipcacheStatus(),
      maps: this.datapath.mapStatus(),
      endpointPolicy: this.endpointPolicySummary(),
      lastServiceSync: this.services.lastSync,
      invalidRecords: Object.fromEntries([...this.cluster.invalid, ...this.cluster.refused, ...this.policy.invalid, ...this.allocator.cache.invalid, ...this.services.invalid]),
    };
  }

  /** How many endpoints have their policy in force, and which do not (stale, fail-closed) and why. */
  private endpointPolicySummary(): { ok: number; stale: number; failClosed: number; error: number; failing: Array<{ endpoint: string; id: number; state: string; error?: string; since?: string }> } {
    const failing = this.policy.failing();
    const byId = new Map(this.endpoints.list().map((e) => [e.epId, e]));
    const count = (s: string): number => failing.filter((f) => f.state === s).length;
    return {
      ok: byId.size - failing.filter((f) => byId.has(f.epId)).length,
      stale: count('stale'),
      failClosed: count('fail-closed'),
      error: count('error'),
      failing: failing.map((f) => {
        const ep = byId.get(f.epId);
        const row: { endpoint: string; id: number; state: string; error?: string; since?: string } = { endpoint: ep ? `${ep.namespace}/${ep.pod}` : String(f.epId), id: f.epId, state: f.state };
        if (f.error !== undefined) row.error = f.error;
        if (f.since !== undefined) row.since = f.since;
        return row;
      }),
    };
  }

  /** Conntrack pressure for `weft status`: use of the table, the busiest endpoints against their quota, drops, the last sweep. */
  async conntrackStatus(): Promise<ConntrackReport> {
    const quota = conntrackConfig(this.config).maxEntriesPerEndpoint;
    const s = await this.datapath.conntrackStatus();
    const byId = new Map(this.endpoints.list().map((e) => [e.epId, e]));
    let entries = 0;
    for (const n of s.byEndpoint.values()) entries += Math.max(0, n);
    const top = [...s.byEndpoint].filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]).slice(0, 5).map(([id, n]) => {
      const ep = byId.get(id);
      return { id, ...(ep ? { pod: `${ep.namespace}/${ep.pod}` } : {}), entries: n, quotaUse: Math.round((n / quota) * 1000) / 1000 };
    });
    return { entries, capacity: s.capacity, quota, topEndpoints: top, drops: { full: Number(s.dropsFull), quota: Number(s.dropsQuota) }, gc: this.conntrackGc?.status() };
  }

  private routes(): void {
    const api = this.api;
    api.route('POST', '/v1/cni', async ({ body }) => {
      const b = body as { command?: string; args?: CniArgs };
      if (!b?.command || !b.args) throw new ApiError(400, 'WEFT_ERR_BAD_REQUEST', 'Expected {command, args}');
      return this.cni(b.command, b.args);
    });
    api.route('GET', '/v1/status', async () => ({ ...this.status(), conntrack: await this.conntrackStatus() }));
    api.route('GET', '/v1/endpoints', async () =>
      this.endpoints.list().map((ep) => {
        const p = this.policy.endpointState(ep.epId);
        return {
          id: ep.epId,
          namespace: ep.namespace,
          pod: ep.pod,
          ip: ep.ip,
          identity: ep.identity,
          labels: ep.labels,
          namespaceLabels: ep.namespaceLabels,
          interface: ep.hostIf,
          // The last label change put in force (or being put, or failed and retried), if any.
          regeneration: ep.regeneration,
          policy: p
            ? {
                ingress: p.ingressEnforced ? 'enforcing' : 'allow-all',
                egress: p.egressEnforced ? 'enforcing' : 'allow-all',
                audit: p.audit,
                revision: p.rev,
                entries: p.entries,
                policies: p.policies,
                // ok | stale (old policy in force, new grants missing) | fail-closed (all traffic dropped) | error
                state: p.state,
                ...(p.error !== undefined ? { error: p.error, since: p.since } : {}),
              }
            : undefined,
        };
      }),
    );
    api.route('GET', '/v1/bpf/ipcache', async () => this.datapath.dumpIpcache());
    api.route('GET', '/v1/bpf/nodes', async () => this.datapath.dumpNodes());
    api.route('GET', '/v1/services', async () => this.services.list());
    api.route('GET', '/v1/encryption', async (): Promise<EncryptionStatus> => {
      if (!this.encryption) return { mode: 'off', strict: false, clearIngress: { dropped: false }, peers: [], refused: [] };
      const s = await this.encryption.status();
      const filter = this.datapath.clearIngressFilter();
      // from_underlay drops a peer's clear pod and tunnel traffic in every mode; IPsec's XFRM policies refuse clear pod traffic too.
      const clearIngress = filter ? { dropped: true, by: `from_underlay on ${filter}${s.mode === 'ipsec' ? ' and XFRM in policies (ESP required)' : ''}` } : { dropped: false };
      return { ...s, clearIngress };
    });
    api.route('POST', '/v1/encryption/rotate', async () => {
      if (!this.encryption) throw new ApiError(400, RotationUnavailableError.code, 'Cannot rotate keys: encryption is off on this node');
      try {
        return this.encryption.rotate('manual');
      } catch (err) {
        if (err instanceof RotationInProgressError || err instanceof RotationUnavailableError) throw new ApiError(409, err.code, err.message);
        throw err;
      }
    });
    api.route('GET', '/v1/bpf/lb', async () => this.datapath.dumpServices());
    api.route('GET', '/v1/bpf/policy', async ({ query }) => {
      const ep = this.endpoints.find(query.get('endpoint') ?? '');
      const entries = await this.datapath.dumpPolicy(ep.epId);
      return { endpoint: { id: ep.epId, namespace: ep.namespace, pod: ep.pod }, entries: entries.map((e) => ({ ...e, rule: this.policy.ruleName(e.ruleId) })) };
    });
    api.route('GET', '/v1/policies', async () => this.policy.listPolicies());
    api.route('GET', '/v1/flows', async ({ query }, res) => {
      const filter: FlowFilter = {};
      for (const k of ['pod', 'namespace', 'label', 'verdict'] as const) {
        const v = query.get(k);
        if (v) filter[k] = v;
      }
      if (query.get('identity')) filter.identity = Number(query.get('identity'));
      const limit = Number(query.get('limit') ?? 100);
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      for (const f of this.flows.recent(filter, limit)) res.write(JSON.stringify(f, bigintJson) + '\n');
      if (query.get('follow') !== '1') return void res.end();
      const { flowMatches } = await import('./flows.js');
      const unfollow = this.flows.follow((f) => {
        if (flowMatches(f, filter)) res.write(JSON.stringify(f, bigintJson) + '\n');
      });
      res.on('close', unfollow);
      return undefined;
    });
  }
}

function memoryMb(): { rss: number; heapUsed: number; external: number } {
  const m = process.memoryUsage();
  const mb = (n: number): number => Math.round((n / 1048576) * 10) / 10;
  return { rss: mb(m.rss), heapUsed: mb(m.heapUsed), external: mb(m.external) };
}

/** `conntrack` in /v1/status. */
export interface ConntrackReport {
  /** Entries held (live, and dead ones not yet swept), by the per-endpoint counts. */
  entries: number;
  capacity: number;
  /** Entries one endpoint may hold. */
  quota: number;
  /** The busiest endpoints. */
  topEndpoints: Array<{ id: number; pod?: string; entries: number; quotaUse: number }>;
  /** New connections refused since the maps were created: table full, endpoint at its quota. */
  drops: { full: number; quota: number };
  gc: ConntrackGcStatus | undefined;
}
