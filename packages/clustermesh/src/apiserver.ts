/**
 * The clustermesh-apiserver: one per cluster, its own process. Serves this
 * cluster's state to the remotes that hold a client certificate from our CA
 * (read only: the protocol has no write), and imports every configured
 * remote's state into the local etcd. Composition root of Exporter and
 * Importers; each has start/stop.
 */
import * as grpc from '@grpc/grpc-js';
import { createLogger, type Logger } from '@weft/common';
import { KvClient } from '@weft/kvstore';
import { checkRemotes, type RemoteProblem } from './config.js';
import { Exporter } from './exporter.js';
import { Importer, type RemoteStatus } from './importer.js';
import { MESH_KINDS, type MeshConfig, type MeshKind, type SyncBatch, type SyncRequest } from './types.js';
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
}

export class ClusterMeshApiServer {
  readonly log: Logger;
  private readonly kv: KvClient;
  private readonly exporter: Exporter;
  private readonly importers: Importer[] = [];
  private readonly problems: RemoteProblem[];
  private server: grpc.Server | undefined;
  private readonly serving = new Set<string>();
  private refused = 0;
  private statusTimer: NodeJS.Timeout | undefined;

  constructor(readonly config: MeshConfig, logger?: Logger) {
    this.log = logger ?? createLogger({ component: 'clustermesh-apiserver', cluster: config.cluster });
    // Imports write 1,000-record transactions: give a busy etcd time rather than fail and retry them.
    this.kv = new KvClient({ endpoints: config.etcd, requestTimeoutMs: 30_000, retry: { maxAttempts: 10, initialMs: 100, maxMs: 2000 } });
    this.exporter = new Exporter(this.kv, this.log);
    this.problems = checkRemotes(config.cluster, config.clusterId, config.remotes);
    for (const p of this.problems) this.log.error({ peer: p.remote, reason: p.reason }, 'remote cluster rejected');
  }

  async start(): Promise<void> {
    await this.exporter.start();
    this.server = new grpc.Server({ 'grpc.max_send_message_length': MAX_MESSAGE_BYTES, ...KEEPALIVE, 'grpc.http2.min_ping_interval_without_data_ms': 10_000, 'grpc.keepalive_permit_without_calls': 1 });
    this.server.addService(MeshService, { sync: (call: grpc.ServerWritableStream<SyncRequest, SyncBatch>) => this.serve(call) });
    const creds = grpc.ServerCredentials.createSsl(Buffer.from(this.config.ca), [{ cert_chain: Buffer.from(this.config.cert), private_key: Buffer.from(this.config.key) }], true);
    await new Promise<void>((resolve, reject) => this.server!.bindAsync(this.config.listen, creds, (err) => (err ? reject(err) : resolve())));
    const rejected = new Set(this.problems.map((p) => p.remote));
    for (const r of this.config.remotes) {
      if (rejected.has(r.name)) continue;
      const imp = new Importer(r, { cluster: this.config.cluster, kv: this.kv, podCidrs: () => this.localPodCidrs(), staleAfterMs: (this.config.staleAfterSeconds ?? 600) * 1000, maxTxnOps: this.config.etcdMaxTxnOps ?? 128 }, this.log);
      this.importers.push(imp);
      imp.start();
    }
    this.statusTimer = setInterval(() => void this.publishStatus().catch(() => undefined), 1000);
    this.statusTimer.unref();
    this.log.info({ listen: this.config.listen, remotes: this.importers.length }, 'clustermesh-apiserver ready');
  }

  async stop(): Promise<void> {
    clearInterval(this.statusTimer);
    await Promise.all(this.importers.map((i) => i.stop()));
    this.server?.forceShutdown();
    await this.exporter.stop();
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
    };
  }

  private async publishStatus(): Promise<void> {
    await this.kv.put(`${MESH_STATUS_PREFIX}${this.config.cluster}`, JSON.stringify(this.status()));
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
    const known = this.config.remotes.some((r) => r.name === cn) && !this.problems.some((p) => p.remote === cn);
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
