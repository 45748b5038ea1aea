/**
 * The clustermesh-apiserver: one per cluster, its own process. Serves this
 * cluster's state to the remotes that hold a client certificate from our CA
 * (read only: the protocol has no write), and imports every configured
 * remote's state into the local etcd. Composition root of Exporter and
 * Importers; each has start/stop. With `source: kubernetes` it reads
 * Services from the API server and mirrors this cluster's identities as
 * WeftIdentity objects (docs/kubernetes.md).
 */
import * as grpc from '@grpc/grpc-js';
import { createLogger, type HealthReport, type Logger } from '@weft/common';
import { KubernetesSource, type IdentityMirror } from '@weft/kubernetes';
import { KvClient } from '@weft/kvstore';
import { ResourceStore } from '@weft/resources';
import { readEtcdTls, resolveRemotes, type RemoteProblem } from './config.js';
import { Exporter } from './exporter.js';
import { meshHealth } from './health.js';
import { Importer, type RemoteStatus } from './importer.js';
import { MESH_KINDS, MESH_ROOT, type MeshConfig, type MeshKind, type RemoteConfig, type SyncBatch, type SyncRequest } from './types.js';
import { KEEPALIVE, MAX_MESSAGE_BYTES, MeshService } from './wire.js';

export const MESH_STATUS_PREFIX = 'weft/meshstatus/v1/';

export interface MeshStatus {
  cluster: string;
  clusterId: number;
  listen: string;
  exported: Record<MeshKind, number>;
  servingTo: string[];
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
  private readonly serving = new Set<string>();
  private refused = 0;
  private statusTimer: NodeJS.Timeout | undefined;
  /** When etcd last answered, and why the latest status write failed (health.ts). */
  private etcdOkAt = 0;
  private etcdError: string | undefined;
  /** kubernetes mode: this cluster's identities as WeftIdentity objects. */
  private identityMirror: IdentityMirror | undefined;
  private unmirror: (() => void) | undefined;

  constructor(readonly config: MeshConfig, logger?: Logger) {
    this.log = logger ?? createLogger({ component: 'clustermesh-apiserver', cluster: config.cluster });
    // Imports write 1,000-record transactions: give a busy etcd time rather than fail and retry them.
    const tls = readEtcdTls(config);
    this.kv = new KvClient({ endpoints: config.etcd, ...(tls ? { tls } : {}), requestTimeoutMs: 30_000, retry: { maxAttempts: 10, initialMs: 100, maxMs: 2000 } });
    ({ remotes: this.remotes, problems: this.problems } = resolveRemotes(config));
    for (const p of this.problems) this.log.error({ peer: p.remote, reason: p.reason }, 'remote cluster rejected');
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
      this.unmirror = this.exporter.subscribe('identities', (b) => {
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
    const creds = grpc.ServerCredentials.createSsl(Buffer.from(this.config.ca), [{ cert_chain: Buffer.from(this.config.cert), private_key: Buffer.from(this.config.key) }], true);
    await new Promise<void>((resolve, reject) => this.server!.bindAsync(this.config.listen, creds, (err) => (err ? reject(err) : resolve())));
    const rejected = new Set(this.problems.map((p) => p.remote));
    for (const r of this.remotes) {
      if (rejected.has(r.name)) continue;
      const imp = new Importer(r, { cluster: this.config.cluster, kv: this.kv, podCidrs: () => this.localPodCidrs(), staleAfterMs: (this.config.staleAfterSeconds ?? 600) * 1000, maxTxnOps: this.config.etcdMaxTxnOps ?? 128 }, this.log);
      this.importers.push(imp);
      imp.start();
    }
    await this.pruneUnconfigured().catch((err: Error) => this.log.warn({ err: err.message }, 'cannot delete the state of remotes no longer configured'));
    this.statusTimer = setInterval(() => void this.publishStatus().catch(() => undefined), 1000);
    this.statusTimer.unref();
    this.log.info({ listen: this.config.listen, remotes: this.importers.length }, 'clustermesh-apiserver ready');
  }

  async stop(): Promise<void> {
    clearInterval(this.statusTimer);
    this.unmirror?.();
    await this.identityMirror?.stop();
    await Promise.all(this.importers.map((i) => i.stop()));
    this.server?.forceShutdown();
    await this.exporter?.stop();
    this.kv.close();
  }

  status(): MeshStatus {
    return {
      cluster: this.config.cluster,
      clusterId: this.config.clusterId,
      listen: this.config.listen,
      exported: Object.fromEntries(MESH_KINDS.map((k) => [k, this.exporter.count(k)])) as Record<MeshKind, number>,
      servingTo: [...this.serving],
      remotes: this.importers.map((i) => ({ ...i.status })),
      rejectedRemotes: this.problems,
      refusedPeers: this.refused,
      unexportedEndpoints: { count: this.exporter.rejected.size, examples: [...this.exporter.rejected].slice(0, 10).map(([key, reason]) => ({ key, reason })) },
    };
  }

  /** What Mesh/Health answers (health.ts): no etcd round trip, the status writes already tell. */
  health(): HealthReport {
    return meshHealth({ now: Date.now(), etcdOkAt: this.etcdOkAt, etcdError: this.etcdError, listen: this.config.listen, servingTo: [...this.serving] });
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
    const { keys } = await this.kv.listKeys(MESH_ROOT);
    for (const name of new Set(keys.map((k) => k.slice(MESH_ROOT.length).split('/')[0]!))) {
      if (running.has(name)) continue;
      await this.kv.deletePrefix(`${MESH_ROOT}${name}/`);
      this.log.info({ peer: name }, 'deleted the state imported from a remote that is no longer configured');
    }
  }

  private localPodCidrs(): string[] {
    const out: string[] = [];
    for (const v of this.exporter.localValues('nodes')) {
      try {
        out.push((JSON.parse(v) as { podCidr: string }).podCidr);
      } catch {
        // the agent validates its own records; skip what does not parse
      }
    }
    return out;
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
    this.serving.add(cn);
    const kinds = (request.kinds ?? []).filter((k) => MESH_KINDS.includes(k));
    const unsubscribe = kinds.map((k) => this.exporter.subscribe(k, (batch) => call.write(batch)));
    const done = (): void => {
      unsubscribe.forEach((u) => u());
      this.serving.delete(cn);
    };
    call.on('cancelled', done);
    call.on('close', done);
    call.on('error', done);
  }
}
