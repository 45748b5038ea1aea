/**
 * The clustermesh-apiserver: one per cluster, its own process. Serves this
 * cluster's state to the remotes that hold a client certificate from our CA
 * (read only: the protocol has no write), and imports every configured
 * remote's state into the local etcd. Composition root of Exporter and
 * Importers; each has start/stop. With `source: kubernetes` it reads
 * Services from the API server and mirrors this cluster's identities as
 * WeftIdentity objects (docs/kubernetes.md).
 */
import { constants as http2 } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { LocalAddresses, RemoteClaims, DEFAULT_MIN_POD_CIDR_BITS, MESH_CLUSTERS_PREFIX } from '@weft/schema';
import { createLogger, type HealthReport, type Logger } from '@weft/common';
import { KubernetesSource, type IdentityMirror } from '@weft/kubernetes';
import { KvClient } from '@weft/kvstore';
import { parseCidr, type Cidr } from '@weft/policy';
import { ResourceStore, SERVICE_CIDR } from '@weft/resources';
import { readEtcdTls, resolveRemotes, type RemoteProblem } from './config.js';
import { Exporter } from './exporter.js';
import { meshHealth } from './health.js';
import { Importer, withdrawRemote, type RemoteStatus } from './importer.js';
import type { Backlog, Subscription } from './subscription.js';
import { MESH_KINDS, MESH_ROOT, type MeshConfig, type MeshKind, type RemoteConfig, type SyncBatch, type SyncRequest } from './types.js';
import { KEEPALIVE, MAX_MESSAGE_BYTES, MeshService } from './wire.js';
import { observerForward } from './observer-forward.js';
import { observerProto } from '@weft/observer';
import { MeshMetrics } from './mesh-metrics.js';

export const MESH_STATUS_PREFIX = 'weft/meshstatus/v1/';

export interface MeshStatus {
  cluster: string;
  clusterId: number;
  listen: string;
  exported: Record<MeshKind, number>;
  servingTo: string[];
  /** Each remote we serve: what it still has to be sent (subscription.ts). */
  serving: Array<{ peer: string } & Backlog>;
  /** Streams reset because their reader took nothing for exportStallSeconds. */
  stalledPeers: number;
  remotes: RemoteStatus[];
  rejectedRemotes: RemoteProblem[];
  refusedPeers: number;
  /** Local endpoint records not exported (outside their node's podCidr, no node, ...): how many, and a few with why. */
  unexportedEndpoints?: { count: number; examples: Array<{ key: string; reason: string }> };
}

export class ClusterMeshApiServer {
  readonly log: Logger;
  private readonly kv: KvClient;
  private exporter!: Exporter;
  private readonly importers: Importer[] = [];
  private readonly problems: RemoteProblem[];
  /** The configured remotes and those of remotesDir (rejected ones included: see problems). */
  private readonly remotes: RemoteConfig[];
  private server: grpc.Server | undefined;
  private closeObserver: (() => void) | undefined;
  /** The stream each remote reads, one per remote: a new Sync replaces the previous one. */
  private readonly serving = new Map<string, { sub: Subscription; call: grpc.ServerWritableStream<SyncRequest, SyncBatch> }>();
  private refused = 0;
  private stalled = 0;
  /** This cluster's addresses (its nodes' IPs and pod CIDRs, configured ranges), rebuilt when its nodes change. */
  private localAddresses: LocalAddresses | undefined;
  private localChangeQueued = false;
  /** The local nodes' names, IPs and pod CIDRs the addresses were last built from. */
  private localFingerprint: string | undefined;
  /** Pod CIDRs and IPs of every remote's admitted nodes, and the allow-lists: one for all importers. */
  private readonly claims = new RemoteClaims();
  private statusTimer: NodeJS.Timeout | undefined;
  /** When etcd last answered, and why the latest status write failed (health.ts). */
  private etcdOkAt = 0;
  private etcdError: string | undefined;
  /** kubernetes mode: this cluster's identities as WeftIdentity objects. */
  private identityMirror: IdentityMirror | undefined;
  private unmirror: (() => void) | undefined;
  private unlisten: (() => void) | undefined;
  /** Prometheus metrics (mesh-metrics.ts), served with config.metrics. */
  readonly metrics: MeshMetrics | undefined;

  constructor(readonly config: MeshConfig, logger?: Logger) {
    this.log = logger ?? createLogger({ component: 'clustermesh-apiserver', cluster: config.cluster });
    // Imports write 1,000-record transactions: give a busy etcd time rather than fail and retry them.
    const tls = readEtcdTls(config);
    this.kv = new KvClient({ endpoints: config.etcd, ...(tls ? { tls } : {}), requestTimeoutMs: 30_000, retry: { maxAttempts: 10, initialMs: 100, maxMs: 2000 } });
    ({ remotes: this.remotes, problems: this.problems } = resolveRemotes(config));
    for (const p of this.problems) this.log.error({ peer: p.remote, reason: p.reason }, 'remote cluster rejected');
    if (config.metrics) this.metrics = new MeshMetrics(this, this.log.child({ component: 'metrics' }));
  }

  async start(): Promise<void> {
    const c = this.config;
    // Services from the cluster's etcd (standalone) or its API server; everything else stays in etcd.
    const resources = c.source === 'kubernetes' ? await KubernetesSource.create({ cluster: c.cluster, logger: this.log, ...(c.kubeconfig !== undefined ? { kubeconfig: c.kubeconfig } : {}) }) : new ResourceStore(this.kv);
    this.exporter = new Exporter(this.kv, this.log, resources, { cluster: c.cluster, clusterId: c.clusterId });
    await this.exporter.start();
    this.etcdOkAt = Date.now();
    if (resources instanceof KubernetesSource) {
      const mirror = (this.identityMirror = resources.identityMirror());
      this.unmirror = this.exporter.listen('identities', (b) => {
        for (const [id, labels] of b.upserts) mirror.upsert(id, labels);
        for (const id of b.deletes) mirror.delete(id);
        if (b.synced) mirror.synced();
      });
    }
    this.server = new grpc.Server({ 'grpc.max_send_message_length': MAX_MESSAGE_BYTES, ...KEEPALIVE, 'grpc.http2.min_ping_interval_without_data_ms': 10_000, 'grpc.keepalive_permit_without_calls': 1 });
    this.server.addService(MeshService, {
      sync: (call: grpc.ServerWritableStream<SyncRequest, SyncBatch>) => this.serve(call),
      health: (_call: grpc.ServerUnaryCall<object, HealthReport>, done: grpc.sendUnaryData<HealthReport>) => done(null, this.health()),
    });
    if (this.config.observer?.relay) {
      const isRemote = (cn: string | undefined): boolean => cn !== undefined && this.remotes.some((r) => r.name === cn) && !this.problems.some((p) => p.remote === cn);
      const forward = observerForward(this.config.observer, this.config.cluster, isRemote, this.log.child({ component: 'observer-forward' }));
      this.server.addService(observerProto().weft.observer.v1.Observer.service, forward.handlers);
      this.closeObserver = forward.close;
    }
    const creds = grpc.ServerCredentials.createSsl(Buffer.from(this.config.ca), [{ cert_chain: Buffer.from(this.config.cert), private_key: Buffer.from(this.config.key) }], true);
    await new Promise<void>((resolve, reject) => this.server!.bindAsync(this.config.listen, creds, (err) => (err ? reject(err) : resolve())));
    const rejected = new Set(this.problems.map((p) => p.remote));
    const running = this.remotes.filter((r) => !rejected.has(r.name));
    for (const r of running) this.claims.allow(r.name, (r.podCidrs ?? []).map((c) => parseCidr(c)).filter((c): c is Cidr => typeof c !== 'string'));
    // Local nodes come and go: what remotes may claim follows (the first call is the snapshot).
    this.unlisten = this.exporter.listen('nodes', () => this.localChanged());
    for (const r of running) {
      const imp: Importer = new Importer(r, {
        cluster: c.cluster,
        clusterId: c.clusterId,
        kv: this.kv,
        staleAfterMs: (c.staleAfterSeconds ?? 600) * 1000,
        maxTxnOps: c.etcdMaxTxnOps ?? 128,
        local: () => (this.localAddresses ??= this.buildLocalAddresses()),
        claims: this.claims,
        minPodCidrBits: c.minPodCidrBits ?? DEFAULT_MIN_POD_CIDR_BITS,
        ...(c.limits ? { limits: c.limits } : {}),
        onReleased: () => this.importers.forEach((other) => other !== imp && other.revalidate()),
        ...(this.metrics ? { onTransition: this.metrics.onTransition } : {}),
      }, this.log);
      this.importers.push(imp);
      imp.start();
    }
    await this.pruneUnconfigured().catch((err: Error) => this.log.warn({ err: err.message }, 'cannot delete the state of remotes no longer configured'));
    this.statusTimer = setInterval(() => void this.publishStatus().catch(() => undefined), 1000);
    this.statusTimer.unref();
    await this.metrics?.start();
    this.log.info({ listen: this.config.listen, remotes: this.importers.length }, 'clustermesh-apiserver ready');
  }

  async stop(): Promise<void> {
    clearInterval(this.statusTimer);
    await this.metrics?.stop();
    this.unmirror?.();
    this.unlisten?.();
    for (const { sub } of this.serving.values()) sub.close();
    await this.identityMirror?.stop();
    await Promise.all(this.importers.map((i) => i.stop()));
    this.server?.forceShutdown();
    this.closeObserver?.();
    await this.exporter?.stop();
    this.kv.close();
  }

  status(): MeshStatus {
    return {
      cluster: this.config.cluster,
      clusterId: this.config.clusterId,
      listen: this.config.listen,
      exported: Object.fromEntries(MESH_KINDS.map((k) => [k, this.exporter.count(k)])) as Record<MeshKind, number>,
      servingTo: [...this.serving.keys()],
      serving: [...this.serving].map(([peer, { sub }]) => ({ peer, ...sub.backlog() })),
      stalledPeers: this.stalled,
      remotes: this.importers.map((i) => ({ ...i.status })),
      rejectedRemotes: this.problems,
      refusedPeers: this.refused,
      unexportedEndpoints: { count: this.exporter.rejected.size, examples: [...this.exporter.rejected].slice(0, 10).map(([key, reason]) => ({ key, reason })) },
    };
  }

  /** What Mesh/Health answers (health.ts): no etcd round trip, the status writes already tell. */
  health(): HealthReport {
    return meshHealth({ now: Date.now(), etcdOkAt: this.etcdOkAt, etcdError: this.etcdError, listen: this.config.listen, servingTo: [...this.serving.keys()] });
  }

  private async publishStatus(): Promise<void> {
    try {
      await this.kv.put(`${MESH_STATUS_PREFIX}${this.config.cluster}`, JSON.stringify(this.status()));
      this.etcdOkAt = Date.now();
      this.etcdError = undefined;
    } catch (err) {
      this.etcdError = (err as Error).message;
      throw err;
    }
  }

  /**
   * State imported from a remote that is no longer configured (disconnected, or now rejected) is
   * deleted: no importer keeps it current or lets it go stale any more.
   */
  private async pruneUnconfigured(): Promise<void> {
    const running = new Set(this.importers.map((i) => i.status.name));
    const listed = (await this.kv.listKeys(MESH_CLUSTERS_PREFIX)).keys.map((k) => k.slice(MESH_CLUSTERS_PREFIX.length));
    const imported = (await this.kv.listKeys(MESH_ROOT)).keys.map((k) => k.slice(MESH_ROOT.length).split('/')[0]!);
    for (const name of new Set([...listed, ...imported])) {
      if (running.has(name)) continue;
      await withdrawRemote(this.kv, name);
      this.log.info({ peer: name }, 'deleted the state imported from a remote that is no longer configured');
    }
  }

  private localNodeFingerprint(): string {
    return this.localNodes().map((n) => `${n.name} ${n.ip} ${n.podCidr}`).sort().join('\n');
  }

  /** This cluster's addresses: its nodes (from etcd) and its configured ranges. */
  private buildLocalAddresses(): LocalAddresses {
    const c = this.config;
    return new LocalAddresses({ nodes: this.localNodes(), podCidrs: c.podCidrs ?? [], underlayCidrs: c.underlayCidrs ?? [], serviceCidrs: c.serviceCidrs ?? [SERVICE_CIDR] });
  }

  /** This cluster's nodes, as its exporter holds them. */
  private localNodes(): Array<{ name: string; ip: string; podCidr: string }> {
    const nodes: Array<{ name: string; ip: string; podCidr: string }> = [];
    for (const v of this.exporter.localValues('nodes')) {
      try {
        const n = JSON.parse(v) as { name?: unknown; ip?: unknown; podCidr?: unknown };
        if (typeof n.name === 'string' && typeof n.ip === 'string' && typeof n.podCidr === 'string') nodes.push({ name: n.name, ip: n.ip, podCidr: n.podCidr });
      } catch {
        // the agent validates its own records; skip what does not parse
      }
    }
    return nodes;
  }

  /** Local nodes changed: remotes' records are admitted again against them (once per burst). */
  private localChanged(): void {
    if (this.localChangeQueued) return;
    this.localChangeQueued = true;
    setImmediate(() => {
      this.localChangeQueued = false;
      // Node records change often without moving (keys, rotation epochs): only a move matters here.
      const fingerprint = this.localNodeFingerprint();
      if (fingerprint === this.localFingerprint) return;
      this.localFingerprint = fingerprint;
      this.localAddresses = this.buildLocalAddresses();
      for (const imp of this.importers) imp.revalidate();
    });
  }

  /** One remote's stream. The peer must present a certificate from our CA naming a configured remote. */
  private serve(call: grpc.ServerWritableStream<SyncRequest, SyncBatch>): void {
    const cn = call.getAuthContext().sslPeerCertificate?.subject?.CN;
    const request = call.request;
    const known = this.remotes.some((r) => r.name === cn) && !this.problems.some((p) => p.remote === cn);
    if (!cn || !known || request?.cluster !== cn) {
      this.refused++;
      this.log.warn({ peer: cn ?? '(no certificate)', claimed: request?.cluster }, 'refused clustermesh peer');
      call.emit('error', { code: grpc.status.PERMISSION_DENIED, details: `cluster ${String(request?.cluster)} with certificate ${String(cn)} is not a configured remote of ${this.config.cluster}` });
      return;
    }
    // One stream per remote: a reconnecting importer's old stream may not have closed yet, and
    // a remote opening many would hold a backlog (up to the whole state) for each.
    const previous = this.serving.get(cn);
    if (previous) {
      previous.sub.close();
      resetStream(previous.call);
      this.log.info({ peer: cn }, 'remote opened a new stream; its previous one is reset');
    }
    const kinds = MESH_KINDS.filter((k) => Array.isArray(request.kinds) && request.kinds.includes(k));
    const stallMs = (this.config.exportStallSeconds ?? 300) * 1000;
    const sub = this.exporter.subscribe(kinds, call, {
      stallMs,
      onStall: () => {
        this.stalled++;
        this.log.warn({ peer: cn, stallMs }, 'remote took nothing of its stream for too long; resetting it (it will reconnect to a fresh snapshot)');
        if (!resetStream(call)) this.log.error({ peer: cn }, 'cannot reset a gRPC stream (grpc-js internals changed): the stalled stream is only destroyed on our side');
      },
    });
    this.serving.set(cn, { sub, call });
    const done = (): void => {
      sub.close();
      if (this.serving.get(cn)?.sub === sub) this.serving.delete(cn);
    };
    call.on('cancelled', done);
    call.on('close', done);
    call.on('error', done);
  }
}

/**
 * Ends a server stream at once, queued data and all, with RST_STREAM(CANCEL). A stream whose
 * reader stopped reading cannot be ended politely: grpc-js sends the status as trailers behind
 * the data flow control holds back, and its call has no cancel of its own. So this reaches the
 * HTTP/2 stream under the call; export-flow.etcd.test.ts checks it still works on upgrades.
 * Should grpc-js's layout change, the call is destroyed (our side freed; the client is left to
 * its keepalive) and false tells the caller to say so.
 */
function resetStream(call: grpc.ServerWritableStream<SyncRequest, SyncBatch>): boolean {
  type Layer = { call?: Layer; nextCall?: Layer; stream?: { close(code: number): void } };
  let layer = (call as unknown as Layer).call;
  for (let i = 0; layer && !layer.stream && i < 8; i++) layer = layer.nextCall;
  if (layer?.stream && typeof layer.stream.close === 'function') {
    layer.stream.close(http2.NGHTTP2_CANCEL);
    return true;
  }
  call.destroy(new Error('the reader stopped reading'));
  return false;
}
