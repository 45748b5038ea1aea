/**
 * An agent's own etcd credential, from the cluster's credential issuer (config `etcdIssuer`,
 * Kubernetes mode; docs/credentials.md): before the agent opens etcd, if the certificate at
 * etcdTls.cert is missing, unreadable, not for this node, not signed by the etcd CA the agent now
 * trusts (etcdTls.ca: a reinstalled release has a new CA, and the node keeps the old certificate
 * in its state directory), or past two thirds of its validity, a new
 * key and certificate are requested with the pod's projected ServiceAccount token and written
 * (key 0600) where etcdTls names them. Without `etcdIssuer` (the lab: the lab issues each node's
 * files itself) nothing happens. Failures are retried with backoff: etcd cannot be used without it.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { Backoff, sleep, type Logger } from '@weft/common';
import { requestEtcdCredential } from '@weft/kvstore';
import type { AgentConfig } from './config.js';

/**
 * Whether the certificate file holds a certificate for `node`, signed by the CA in `caFile`, with
 * at least a third of its validity left.
 */
export function credentialFresh(certFile: string, caFile: string, node: string, now = Date.now()): boolean {
  try {
    const cert = new X509Certificate(readFileSync(certFile));
    const ca = new X509Certificate(readFileSync(caFile));
    const from = Date.parse(cert.validFrom);
    const to = Date.parse(cert.validTo);
    return cert.subject === `CN=${node}` && cert.checkIssued(ca) && cert.verify(ca.publicKey) && now >= from && now < to - (to - from) / 3;
  } catch {
    return false;
  }
}

function writeAtomically(file: string, text: string, mode: number): void {
  const tmp = `${file}.new`;
  writeFileSync(tmp, text, { mode });
  renameSync(tmp, file);
}

/** Ensures etcdTls holds this node's credential (see the module comment). */
export async function ensureEtcdCredential(config: AgentConfig, log: Logger, signal?: AbortSignal): Promise<void> {
  const issuer = config.etcdIssuer;
  const tls = config.etcdTls;
  if (!issuer || !tls) return;
  if (credentialFresh(tls.cert, tls.ca, config.node)) return;
  const backoff = new Backoff({ initialMs: 500, maxMs: 30_000 });
  for (;;) {
    try {
      const cred = await requestEtcdCredential({ url: issuer.url, ca: readFileSync(tls.ca, 'utf8'), token: readFileSync(issuer.tokenFile, 'utf8').trim(), node: config.node, ...(signal ? { signal } : {}) });
      // Key first: a certificate never sits next to a key it does not belong to for long.
      writeAtomically(tls.key, cred.key, 0o600);
      writeAtomically(tls.cert, cred.cert, 0o644);
      log.info({ issuer: issuer.url }, 'obtained this node\'s etcd credential');
      return;
    } catch (err) {
      if (signal?.aborted) throw err;
      const delay = backoff.next();
      log.warn({ err: (err as Error).message, retryInMs: delay }, 'cannot obtain this node\'s etcd credential yet');
      await sleep(delay, signal);
    }
  }
}
