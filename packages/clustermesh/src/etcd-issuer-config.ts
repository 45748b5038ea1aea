/**
 * `weft etcd-issuer --config FILE`: the issuer's configuration (the chart renders it) and its
 * composition root. At start it converges etcd's roles and users and switches auth on (as root),
 * retrying until etcd answers, then serves requests (etcd-issuer.ts).
 */
import { readFileSync } from 'node:fs';
import { Backoff, sleep, type Logger } from '@weft/common';
import { EtcdAuth, KvClient, readEtcdTlsFiles, type EtcdTlsFiles, type Pem } from '@weft/kvstore';
import { KubeClient } from '@weft/kubernetes';
import { EtcdCredentialError } from './errors.js';
import { EtcdCredentialIssuer, EtcdIssuerServer } from './etcd-issuer.js';
import { applyClusterRoles } from './etcd-roles.js';

export interface EtcdIssuerConfig {
  /** The cluster's etcd. */
  etcd: string[];
  /** A root client certificate of the etcd CA (users and roles). */
  etcdTls: EtcdTlsFiles;
  /** The etcd CA that signs nodes' certificates. */
  ca: { cert: string; key: string };
  /** The issuer's HTTPS certificate (of the etcd CA: agents verify it with etcdTls.ca). */
  serverTls: { cert: string; key: string };
  /** host:port to listen on. */
  listen: string;
  agentServiceAccount: { namespace: string; name: string };
  days?: number;
  /** Development: a kubeconfig; default the pod's ServiceAccount. */
  kubeconfig?: string;
}

export function loadEtcdIssuerConfig(path: string): EtcdIssuerConfig {
  const fail = (problem: string): never => {
    throw new EtcdCredentialError(`configuration ${path}: ${problem}`);
  };
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    return fail(`cannot read it as JSON: ${(err as Error).message}`);
  }
  const files = (k: string, keys: string[]): Record<string, string> => {
    const v = raw[k] as Record<string, unknown> | undefined;
    if (typeof v !== 'object' || v === null) return fail(`${k} must be an object {${keys.join(', ')}}`);
    for (const f of keys) if (typeof v[f] !== 'string' || v[f] === '') fail(`${k}.${f} must be a non-empty string`);
    return v as Record<string, string>;
  };
  if (!Array.isArray(raw.etcd) || raw.etcd.length === 0 || !raw.etcd.every((e) => typeof e === 'string')) fail('etcd must list endpoints');
  if (typeof raw.listen !== 'string' || !/^[^\s:]+:\d{1,5}$/.test(raw.listen)) fail('listen must be host:port');
  const sa = files('agentServiceAccount', ['namespace', 'name']);
  if (raw.days !== undefined && (typeof raw.days !== 'number' || !Number.isInteger(raw.days) || raw.days < 1)) fail('days must be a positive integer');
  return {
    etcd: raw.etcd as string[],
    etcdTls: files('etcdTls', ['ca', 'cert', 'key']) as unknown as EtcdTlsFiles,
    ca: files('ca', ['cert', 'key']) as EtcdIssuerConfig['ca'],
    serverTls: files('serverTls', ['cert', 'key']) as EtcdIssuerConfig['serverTls'],
    listen: raw.listen as string,
    agentServiceAccount: { namespace: sa.namespace!, name: sa.name! },
    ...(raw.days !== undefined ? { days: raw.days as number } : {}),
    ...(typeof raw.kubeconfig === 'string' ? { kubeconfig: raw.kubeconfig } : {}),
  };
}

function readPem(files: { cert: string; key: string }, what: string): Pem {
  try {
    return { cert: readFileSync(files.cert, 'utf8'), key: readFileSync(files.key, 'utf8') };
  } catch (err) {
    throw new EtcdCredentialError(`cannot read ${what}: ${(err as Error).message}`, { cause: err });
  }
}

/** Runs the issuer until `signal` aborts: roles first (retried until etcd answers), then the server. */
export async function runEtcdIssuer(config: EtcdIssuerConfig, log: Logger, signal: AbortSignal): Promise<void> {
  const tls = readEtcdTlsFiles(config.etcdTls, (field, reason) => new EtcdCredentialError(`etcdTls.${field}: ${reason}`));
  const etcd = new KvClient({ endpoints: config.etcd, tls, logger: log });
  const backoff = new Backoff({ initialMs: 500, maxMs: 10_000 });
  for (;;) {
    try {
      await applyClusterRoles(new EtcdAuth(etcd));
      break;
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'cannot set up etcd roles yet');
      await sleep(backoff.next(), signal);
    }
  }
  log.info('etcd roles and users in place, auth on');
  const kube = await KubeClient.create(config.kubeconfig !== undefined ? { kubeconfig: config.kubeconfig } : {});
  const issuer = new EtcdCredentialIssuer({ kube, etcd, ca: readPem(config.ca, 'the etcd CA'), agentServiceAccount: config.agentServiceAccount, ...(config.days ? { days: config.days } : {}), logger: log });
  const server = new EtcdIssuerServer(issuer, readPem(config.serverTls, 'the issuer\'s server certificate'), log);
  const [host, port] = [config.listen.slice(0, config.listen.lastIndexOf(':')), Number(config.listen.slice(config.listen.lastIndexOf(':') + 1))];
  await server.listen(port, host);
  log.info({ listen: config.listen }, 'etcd credential issuer listening');
  await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
  await server.close();
  etcd.close();
}
