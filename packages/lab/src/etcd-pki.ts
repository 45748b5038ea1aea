/**
 * The lab's etcd credentials, as the chart's: per cluster an etcd CA, a server certificate, and a
 * client certificate per etcd user (docs/credentials.md): one per node (CN = the node, in the
 * node's state directory, which its agent alone reads), the clustermesh-apiserver's, the admin's
 * (what `weft` commands and tests use to reach a lab etcd) and root's (the lab's own setup of
 * users and roles). Files live under the lab's state (/var/run/weft), 0600 keys, and go with
 * `weft lab down`. Issued in process (pki.ts): a few milliseconds per certificate.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ADMIN_USER, APISERVER_USER } from '@weft/clustermesh';
import { createCa, issue, KvClient, type KvClientOptions, type Pem } from '@weft/kvstore';
import type { ClusterLayout, NodeLayout } from './layout.js';

export interface TlsFiles {
  ca: string;
  cert: string;
  key: string;
}

export function etcdPkiDir(c: Pick<ClusterLayout, 'etcdDir'>): string {
  return join(c.etcdDir, '..', 'etcd-pki');
}

/** The CA's and etcd server's files. */
export function etcdServerFiles(c: Pick<ClusterLayout, 'etcdDir'>): TlsFiles {
  const dir = etcdPkiDir(c);
  return { ca: join(dir, 'ca.crt'), cert: join(dir, 'server.crt'), key: join(dir, 'server.key') };
}

/** A component's client files (`root`, `weft-admin`, `weft-clustermesh-apiserver`). */
export function etcdClientFiles(c: Pick<ClusterLayout, 'etcdDir'>, user: string): TlsFiles {
  const dir = etcdPkiDir(c);
  return { ca: join(dir, 'ca.crt'), cert: join(dir, `${user}.crt`), key: join(dir, `${user}.key`) };
}

/** A node agent's client files, in its own state directory. */
export function nodeEtcdFiles(c: Pick<ClusterLayout, 'etcdDir'>, n: Pick<NodeLayout, 'stateDir'>): TlsFiles {
  return { ca: join(etcdPkiDir(c), 'ca.crt'), cert: join(n.stateDir, 'etcd-client.crt'), key: join(n.stateDir, 'etcd-client.key') };
}

function write(files: Pick<TlsFiles, 'cert' | 'key'>, pem: Pem): void {
  writeFileSync(files.cert, pem.cert);
  writeFileSync(files.key, pem.key, { mode: 0o600 });
}

/** Issues every certificate of cluster `c` (a new CA each `lab up`). */
export async function issueEtcdPki(c: ClusterLayout): Promise<void> {
  const dir = etcdPkiDir(c);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = await createCa(`${c.name}-etcd`);
  writeFileSync(join(dir, 'ca.crt'), ca.cert);
  writeFileSync(join(dir, 'ca.key'), ca.key, { mode: 0o600 });
  // The unix socket is verified as localhost (gRPC's authority for unix targets), TCP by address.
  write(etcdServerFiles(c), await issue(ca, 'weft-etcd', { ips: [c.cpIp, '127.0.0.1'], dnsNames: ['localhost'] }));
  for (const user of ['root', ADMIN_USER, APISERVER_USER]) write(etcdClientFiles(c, user), await issue(ca, user));
  for (const n of c.nodes) {
    mkdirSync(n.stateDir, { recursive: true });
    write(nodeEtcdFiles(c, n), await issue(ca, n.name));
  }
}

/** PEM contents of `files`, for KvClient's `tls`. */
export function readTls(files: TlsFiles): { ca: Buffer; cert: Buffer; key: Buffer } {
  return { ca: readFileSync(files.ca), cert: readFileSync(files.cert), key: readFileSync(files.key) };
}

/**
 * A client of a lab cluster's etcd through its unix socket (reachable from the host's namespace),
 * as `user` (default the admin: every key under weft/). What `weft` commands, benchmarks and
 * tests use.
 */
export function labEtcdClient(c: Pick<ClusterLayout, 'etcdDir'>, options: Omit<KvClientOptions, 'endpoints' | 'tls'> & { user?: string } = {}): KvClient {
  const { user, ...rest } = options;
  return new KvClient({ ...rest, endpoints: [`unix://${c.etcdDir}/etcd:0`], tls: readTls(etcdClientFiles(c, user ?? ADMIN_USER)) });
}

