/**
 * The clustermesh-apiserver's health: the Mesh/Health call on its own mTLS
 * port (wire.ts), so a probe exercises the very listener, TLS and gRPC server
 * remotes use, and needs no port or setting of its own. Ready when etcd has
 * answered within ETCD_STALE_MS; tracked from the status record the apiserver
 * writes every second anyway, so a probe costs no etcd round trip. Remotes
 * are not part of it: a remote that is down must not take this cluster's
 * export out of service.
 */
import * as grpc from '@grpc/grpc-js';
import { healthReport, type HealthReport } from '@weft/common';
import type { MeshConfig } from './types.js';
import { MeshClient } from './wire.js';

/** etcd counts as unreachable after this long without an answer (an agent's lease TTL). */
export const ETCD_STALE_MS = 10_000;

export interface MeshHealthState {
  now: number;
  /** When etcd last answered: the exporter's initial lists, then each status write. */
  etcdOkAt: number;
  /** The last failed status write, if the latest write failed. */
  etcdError: string | undefined;
  listen: string;
  servingTo: readonly string[];
}

export function meshHealth(s: MeshHealthState): HealthReport {
  const age = Math.max(0, s.now - s.etcdOkAt);
  const fresh = age <= ETCD_STALE_MS;
  return healthReport([
    { name: 'etcd', ok: fresh, detail: fresh ? `answered ${(age / 1000).toFixed(1)}s ago` : `no answer for ${Math.round(age / 1000)}s${s.etcdError ? `: ${s.etcdError}` : ''}` },
    // Whoever reads this reached it through the mesh port: it serves.
    { name: 'serving', ok: true, detail: `gRPC with mutual TLS on ${s.listen}, streaming to ${s.servingTo.join(', ') || 'no remote yet'}` },
  ]);
}

/** Where a process on the apiserver's host reaches `listen` (a wildcard address means loopback). */
export function localAddress(listen: string): string {
  const i = listen.lastIndexOf(':');
  const host = listen.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  const port = listen.slice(i + 1);
  if (host === '' || host === '0.0.0.0') return `127.0.0.1:${port}`;
  if (host === '::') return `[::1]:${port}`;
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Asks the apiserver that `config` configures for its health at localAddress(listen), presenting its
 * own certificate (the port requires a client certificate from our CA; the chart's and the lab's
 * server certificates allow client authentication). The chain is checked against our CA but not the
 * name: we dial our own process on loopback, and the certificate names the addresses remotes dial.
 * Rejects with the gRPC error when it does not answer within `timeoutMs`.
 */
export async function probeApiServer(config: Pick<MeshConfig, 'listen' | 'ca' | 'cert' | 'key'>, timeoutMs = 5000): Promise<HealthReport> {
  const address = localAddress(config.listen);
  const creds = grpc.credentials.createSsl(Buffer.from(config.ca), Buffer.from(config.key), Buffer.from(config.cert), { checkServerIdentity: () => undefined });
  // A name for TLS's server name indication: Node refuses to send an IP address there (and warns).
  const client = new MeshClient(address, creds, { 'grpc.ssl_target_name_override': 'localhost' }) as unknown as grpc.Client & { health(req: object, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: HealthReport) => void): void };
  try {
    return await new Promise<HealthReport>((resolve, reject) => client.health({}, { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res))));
  } finally {
    client.close();
  }
}
