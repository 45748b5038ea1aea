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
import { ApiServer } from './api.js';
import { CNI_ERROR, cniArgsProblem, isCniCommand, quote } from './cni-args.js';
import { agentHealth } from './health.js';
import { ClusterState } from './cluster-state.js';
import { conntrackConfig, podCidrProblem, readEtcdTls, type AgentConfig } from './config.js';
import { ConntrackGc } from './conntrack-gc.js';
import { PolicyRevisions } from './revisions.js';
import { CidrIdentities } from './cidr-identities.js';
import type { Datapath } from './datapath-port.js';
import { DROP_CT_FULL, DROP_CT_QUOTA } from '@weft/datapath';
import { EndpointManager, type CniArgs, type Endpoint } from './endpoint-manager.js';
import { CapturedFlow } from './flows.js';
import { FlowExporter, LocalObserver, ObserverServer, type ObserverNode } from '@weft/observer';
import { readEtcdTlsFiles } from '@weft/kvstore';
import { encryptionRoutes } from './encryption-routes.js';
import { endpointRoutes } from './endpoint-routes.js';
import { serviceRoutes } from './service-routes.js';
import { statusRoutes } from './status-routes.js';
import { Ipam } from './ipam.js';
import { PolicyEngine } from './policy-engine.js';
import { ServiceManager } from './service-manager.js';
import type { NodeEncryption } from './encryption.js';
import { IpsecNode } from './ipsec-node.js';
import { WireGuardNode } from './wireguard-node.js';
import { AgentConfigError, CniRequestError } from './errors.js';
import { AgentMetrics } from './agent-metrics.js';
import { nodeKey, type NodeRecord } from '@weft/schema';

export class Agent {
  readonly log: Logger;
  readonly kv: KvClient;
  /** The node's flows for the observer API (served on `<stateDir>/observer.sock`, and to the relay). */
  readonly flows: LocalObserver;
  /** With `observer.export`: every flow to a JSON-lines file, for a SIEM (docs/observability.md, Export). */
  readonly exporter: FlowExporter | undefined;
  private observer: ObserverServer | undefined;
  allocator!: IdentityAllocator;
  endpoints!: EndpointManager;
  policy!: PolicyEngine;
  cluster!: ClusterState;
  services!: ServiceManager;
  encryption: NodeEncryption | undefined;
  /** Sweeps the conntrack table (conntrack-gc.ts). */
  conntrackGc: ConntrackGc | undefined;
  /** Prometheus metrics (agent-metrics.ts), served with config.metrics. */
  metrics: AgentMetrics | undefined;
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
  /** Wall-clock time of CLOCK_MONOTONIC's zero (bpf_ktime_get_ns counts from it), in nanoseconds. */
  private readonly bootTimeNs: bigint;
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
    // performance.now() is sub-millisecond: flows of different nodes compare to well under the
    // time a packet takes between them (Date.now() alone would be off by up to a millisecond).
    this.bootTimeNs = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6)) - process.hrtime.bigint();
    this.flows = new LocalObserver({
      cluster: config.cluster,
      node: config.node,
      capacity: config.observer?.bufferSize ?? 10_000,
      nodes: () => this.observerNodes(),
      lostBpfEvents: async () => Number(await this.datapath.flowEventsLost()),
    });
    const x = config.observer?.export;
    if (x) this.exporter = new FlowExporter({ filePath: x.filePath, allow: x.allowList, deny: x.denyList, fieldMask: x.fieldMask, maxSizeBytes: x.fileMaxSizeMb * 1024 * 1024, maxBackups: x.fileMaxBackups, compress: x.fileCompress, cluster: config.cluster, node: config.node, log: this.log.child({ component: 'flow-export' }) });
    if (config.metrics) this.metrics = new AgentMetrics(this, this.log.child({ component: 'metrics' }));
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
    this.policy = new PolicyEngine(c, resources, this.allocator, this.datapath, () => this.endpoints.list(), this.log.child({ component: 'policy' }), () => this.cluster.remoteIdentities);
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
    this.policy.namedPorts = (identity, name) => this.cluster.namedPorts.lookup(identity, name);
    this.cluster.namedPorts.onChange = () => this.policy.namedPortsChanged();
    this.cluster.onRemoteIdentities = (id) => this.policy.remoteIdentityChanged(id);
    this.services = new ServiceManager(c.cluster, resources, this.cluster, this.datapath, this.log.child({ component: 'services' }));
    this.metrics?.attach();
    this.cluster.onChange = (change) => this.services.changed(change);
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
    const flowContext = {
      cluster: c.cluster,
      node: c.node,
      bootTimeNs: this.bootTimeNs,
      podByIp: (ip: string) => this.cluster.endpointByIp(ip),
      labelsOf: (id: number) => this.allocator.lookupById(id) ?? this.cluster.remoteIdentities.get(id),
      ruleName: (id: number) => this.policy.ruleName(id),
      serviceAt: (ip: string, port: number, protocol: string) => this.services.serviceAt(ip, port, protocol),
    };
    await this.exporter?.start();
    this.datapath.onFlow((s) => {
      const flow = new CapturedFlow(s, flowContext);
      this.flows.add(flow);
      this.exporter?.export(flow.build());
    });
    await this.startObserver();
    this.routes();
    await this.metrics?.start();
    this.api.starting = false;
    this.starting = undefined;
    this.log.info({ socket: this.socketPath }, 'agent ready');
  }

  /**
   * Takes Weft off the node (POST /v1/uninstall: `weft agent uninstall`, the chart's preStop with
   * cni.uninstall): stops every loop first, so nothing puts back what goes, then removes the
   * datapath (programs, tunnel device, pins) and encryption's devices or SAs. The agent keeps
   * answering on its socket until it is stopped; pods keep their veths and addresses.
   */
  async uninstall(): Promise<string[]> {
    const devices = this.endpoints?.list().map((e) => e.hostIf) ?? [];
    await this.stop({ keepApi: true });
    const removed = [...(await this.datapath.uninstall(devices)), ...((await this.encryption?.uninstall()) ?? [])];
    this.log.info({ removed }, 'Weft removed from the node');
    return removed;
  }

  async stop(options: { keepApi?: boolean } = {}): Promise<void> {
    if (this.stopped) {
      // After an uninstall, which kept the API: what is left to stop.
      if (!options.keepApi) await this.api?.stop();
      return;
    }
    this.stopped = true;
    this.abort.abort();
    if (!options.keepApi) await this.api?.stop();
    await this.metrics?.stop();
    this.flows.close();
    await this.exporter?.stop();
    await this.observer?.stop();
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

  /** The observer API on the node's socket, and on TCP with mutual TLS when configured (the relay's way in). */
  private async startObserver(): Promise<void> {
    const o = this.config.observer;
    const tls = o?.tls && readEtcdTlsFiles(o.tls, (field, reason) => new AgentConfigError('agent config', `observer.tls.${field}: ${reason}`));
    this.observer = new ObserverServer({
      backend: this.flows,
      cluster: this.config.cluster,
      node: this.config.node,
      socket: join(this.config.stateDir, 'observer.sock'),
      ...(o?.listen ? { listen: o.listen } : {}),
      ...(tls ? { tls } : {}),
      log: this.log.child({ component: 'observer' }),
    });
    await this.observer.start();
  }

  /** The cluster's nodes and where their observers listen (the same port on every node), for the relay. */
  private observerNodes(): ObserverNode[] {
    const port = this.config.observer?.listen?.split(':')[1];
    const nodes = this.cluster ? [...this.cluster.nodes.values()] : [];
    if (!nodes.some((n) => n.name === this.config.node)) nodes.push({ name: this.config.node, cluster: this.config.cluster, ip: this.config.nodeIp, podCidr: this.config.podCidr, routing: this.config.routing });
    return nodes
      .sort((a, b) => (a.name < b.name ? -1 : 1))
      .map((n) => ({ name: n.name, cluster: this.config.cluster, address: port ? `${n.ip}:${port}` : '', state: 'NODE_STATE_UNKNOWN' as const, version: '', uptimeNs: 0, numFlows: 0, maxFlows: 0, seenFlows: 0, error: '' }));
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
    // The node's own ipcache hears of its endpoints directly, not through etcd.
    this.cluster.setLocalEndpoint(ep.ip, removed ? undefined : ep.identity);
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

  /** The API: each domain's routes, from the parts composed here. */
  private routes(): void {
    const parts = { config: this.config, endpoints: this.endpoints, allocator: this.allocator, policy: this.policy, cluster: this.cluster, services: this.services, datapath: this.datapath };
    statusRoutes(this.api, { ...parts, sessionState: () => this.session.state, conntrackGc: () => this.conntrackGc });
    endpointRoutes(this.api, { ...parts, cni: (command, args) => this.cni(command, args) });
    serviceRoutes(this.api, parts);
    encryptionRoutes(this.api, { datapath: this.datapath, encryption: () => this.encryption });
    this.api.route('POST', '/v1/uninstall', async () => ({ removed: await this.uninstall() }));
  }
}
