/**
 * The lab's observer certificates, per cluster (a new CA each `lab up`), as the chart's: each agent
 * serves its observer with a certificate naming `<node>.<cluster>.observer.weft.io` and its
 * address, and admits clients of the same CA; the relay holds a client certificate of it.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCa, issue, type Pem } from '@weft/kvstore';
import { observerServerName, peerServerName } from '@weft/observer';
import type { TlsFiles } from './etcd-pki.js';
import { LAB_STATE_DIR, type ClusterLayout, type NodeLayout } from './layout.js';

/** Where the agents' observers listen, on their node address. */
export const OBSERVER_PORT = 4244;

export function relayDir(c: Pick<ClusterLayout, 'name'>): string {
  return join(LAB_STATE_DIR, c.name, 'relay');
}

export function relaySocket(c: Pick<ClusterLayout, 'name'>): string {
  return join(relayDir(c), 'relay.sock');
}

export function nodeObserverFiles(c: Pick<ClusterLayout, 'name'>, n: Pick<NodeLayout, 'stateDir'>): TlsFiles {
  return { ca: join(relayDir(c), 'observer-ca.crt'), cert: join(n.stateDir, 'observer.crt'), key: join(n.stateDir, 'observer.key') };
}

export function relayClientFiles(c: Pick<ClusterLayout, 'name'>): TlsFiles {
  const dir = relayDir(c);
  return { ca: join(dir, 'observer-ca.crt'), cert: join(dir, 'relay.crt'), key: join(dir, 'relay.key') };
}

function write(files: Pick<TlsFiles, 'cert' | 'key'>, pem: Pem): void {
  writeFileSync(files.cert, pem.cert);
  writeFileSync(files.key, pem.key, { mode: 0o600 });
}

export async function issueObserverPki(c: ClusterLayout): Promise<void> {
  mkdirSync(relayDir(c), { recursive: true, mode: 0o700 });
  const ca = await createCa(`${c.name}-observer`);
  writeFileSync(relayClientFiles(c).ca, ca.cert);
  write(relayClientFiles(c), await issue(ca, 'weft-relay'));
  for (const n of c.nodes) {
    mkdirSync(n.stateDir, { recursive: true });
    write(nodeObserverFiles(c, n), await issue(ca, n.name, { ips: [n.ip], dnsNames: [observerServerName(c.name, n.name), peerServerName(c.name)] }));
  }
}
