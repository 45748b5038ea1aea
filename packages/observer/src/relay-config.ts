/**
 * The relay's configuration (`weft relay --config FILE`), checked whole before anything starts:
 *
 *   cluster        the cluster it serves
 *   socket         a unix socket to serve on (local tools, the clustermesh-apiserver's forward)
 *   listen, tls    host:port to serve on with mutual TLS (clients with certificates of tls.ca)
 *   peers          agents' observer addresses (host:port) to read the node list from; the first that
 *                  answers. `${NAME}` is replaced by the environment variable NAME (the chart passes
 *                  the relay's own node IP: the agent there is a peer); the agent's certificate must
 *                  name `peer.<cluster>.observer.weft.io`
 *   agentTls       the CA of the agents' server certificates and the relay's client certificate;
 *                  an agent's certificate must name `<node>.<cluster>.observer.weft.io`
 *   mesh           the clustermesh-apiserver's configuration file: the connected clusters, their
 *                  addresses and the credentials for each (their relays answer through it)
 *   refreshSeconds between checks of the node list and of each node (default 10)
 *   sortWindowMs   how long a live flow waits for earlier ones from other nodes (default 200)
 *   metrics        {listen: "IPv4:port"}: serve Prometheus metrics there (docs/metrics.md)
 */
import { readFileSync } from 'node:fs';
import { parseListen } from '@weft/metrics/listen';
import { RelayConfigError } from './errors.js';

export interface TlsPaths {
  ca: string;
  cert: string;
  key: string;
}

export interface RelayConfig {
  cluster: string;
  socket?: string;
  listen?: string;
  tls?: TlsPaths;
  peers: string[];
  agentTls: TlsPaths;
  mesh?: string;
  refreshSeconds: number;
  sortWindowMs: number;
  metrics?: { listen: string };
}

/** The name an agent's observer certificate carries: one per node, or a wildcard per cluster. */
export function observerServerName(cluster: string, node: string): string {
  // One DNS label per node, so a certificate for *.<cluster>.observer.weft.io names every node
  // (a wildcard covers one label; node names may be FQDNs).
  return `${node.replace(/\./g, '-')}.${cluster}.observer.weft.io`;
}

/** The name any agent's certificate carries for a relay that reads the node list from it. */
export function peerServerName(cluster: string): string {
  return observerServerName(cluster, 'peer');
}

/** `${NAME}` in `text` replaced by environment variable NAME; an unset or empty one is an error naming it. */
export function expandEnv(text: string, env: NodeJS.ProcessEnv, fail: (problem: string) => never): string {
  return text.replace(/\$\{([A-Z_][A-Z0-9_]*)\}/g, (_, name: string) => env[name] || fail(`environment variable ${name} is not set`));
}

export function loadRelayConfig(path: string): RelayConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new RelayConfigError(path, `cannot read it as JSON: ${(err as Error).message}`);
  }
  return validateRelayConfig(raw, path);
}

const HOST_PORT = /^[A-Za-z0-9.-]+:\d{1,5}$/;

export function validateRelayConfig(raw: unknown, source = 'relay config', env: NodeJS.ProcessEnv = process.env): RelayConfig {
  const fail = (field: string, problem: string): never => {
    throw new RelayConfigError(source, `${field}: ${problem}`);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('(document)', 'must be an object');
  const c = raw as Record<string, unknown>;
  const known = ['cluster', 'socket', 'listen', 'tls', 'peers', 'agentTls', 'mesh', 'refreshSeconds', 'sortWindowMs', 'metrics'];
  const extra = Object.keys(c).find((k) => !known.includes(k));
  if (extra !== undefined) fail(extra, `is not a relay setting (${known.join(', ')})`);
  const path = (k: string, v: unknown): string => (typeof v === 'string' && v.startsWith('/') && !/[\0\n]/.test(v) ? v : fail(k, `${JSON.stringify(v)} must be an absolute path`));
  const tls = (k: string, v: unknown): TlsPaths => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(k, 'must be an object {ca, cert, key} of file paths');
    const t = v as Record<string, unknown>;
    const bad = Object.keys(t).find((x) => !['ca', 'cert', 'key'].includes(x));
    if (bad) fail(`${k}.${bad}`, `is not a key of ${k} (ca, cert, key)`);
    return { ca: path(`${k}.ca`, t.ca), cert: path(`${k}.cert`, t.cert), key: path(`${k}.key`, t.key) };
  };
  if (typeof c.cluster !== 'string' || !/^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$/.test(c.cluster)) fail('cluster', `${JSON.stringify(c.cluster)} must be 1-32 lowercase letters, digits or '-'`);
  if (!Array.isArray(c.peers) || c.peers.length === 0) fail('peers', 'must list at least one agent observer address (host:port)');
  const peers = (c.peers as unknown[]).map((p, i) => {
    const expanded = typeof p === 'string' ? expandEnv(p, env, (problem) => fail(`peers[${i}]`, `${JSON.stringify(p)}: ${problem}`)) : p;
    if (typeof expanded !== 'string' || !HOST_PORT.test(expanded)) fail(`peers[${i}]`, `${JSON.stringify(p)} is not host:port`);
    return expanded as string;
  });
  const out: RelayConfig = {
    cluster: c.cluster as string,
    peers,
    agentTls: tls('agentTls', c.agentTls),
    refreshSeconds: num(c.refreshSeconds, 10, 1, 3600, 'refreshSeconds', fail),
    sortWindowMs: num(c.sortWindowMs, 200, 0, 10_000, 'sortWindowMs', fail),
  };
  if (c.socket !== undefined) out.socket = path('socket', c.socket);
  if (c.listen !== undefined) {
    if (typeof c.listen !== 'string' || !HOST_PORT.test(c.listen)) fail('listen', `${JSON.stringify(c.listen)} is not host:port`);
    if (c.tls === undefined) fail('listen', 'needs tls: the relay serves TCP only with mutual TLS');
    out.listen = c.listen as string;
  }
  if (c.tls !== undefined) out.tls = tls('tls', c.tls);
  if (out.socket === undefined && out.listen === undefined) fail('(document)', 'needs socket or listen: somewhere to serve');
  if (c.mesh !== undefined) out.mesh = path('mesh', c.mesh);
  if (c.metrics !== undefined) {
    const m = c.metrics;
    if (typeof m !== 'object' || m === null || Array.isArray(m)) fail('metrics', 'must be an object {listen}');
    const bad = Object.keys(m as object).find((k) => k !== 'listen');
    if (bad !== undefined) fail(`metrics.${bad}`, 'is not a key of metrics (listen)');
    const listen = (m as { listen?: unknown }).listen;
    const parsed = parseListen(listen);
    if (typeof parsed === 'string') fail('metrics.listen', `${JSON.stringify(listen)} ${parsed}`);
    out.metrics = { listen: listen as string };
  }
  return out;
}

function num(v: unknown, dflt: number, min: number, max: number, field: string, fail: (f: string, p: string) => never): number {
  if (v === undefined) return dflt;
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? v : fail(field, `${JSON.stringify(v)} must be an integer ${min}-${max}`);
}
