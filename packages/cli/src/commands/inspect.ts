/** Read-only views of agents: status, endpoints, BPF maps, policies. All take `-o json`. */
import { parseArgs } from 'node:util';
import { agentsFor } from '../context.js';
import { parseFormat, printJson, printTable, UsageError } from '../output.js';

const common = { cluster: { type: 'string' }, node: { type: 'string' }, agent: { type: 'string' }, output: { type: 'string', short: 'o' } } as const;

export async function status(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: common });
  const rows = await Promise.all(agentsFor(values).map(async ({ node, client }) => {
    try {
      return { node, ok: true, ...(await client.call<Record<string, unknown>>('GET', '/v1/status')) };
    } catch (err) {
      return { node, ok: false, error: (err as Error).message };
    }
  }));
  if (parseFormat(values.output) === 'json') return printJson(rows);
  printTable(['NODE', 'AGENT', 'IP', 'ROUTING', 'ENDPOINTS', 'IDENTITIES', 'POLICIES', 'CLUSTER NODES', 'CLUSTER ENDPOINTS', 'IPCACHE', 'ENDPOINT POLICY'], rows.map((r) => {
    const s = r as Record<string, unknown> & Partial<DatapathStatus>;
    return [String(s.node), s.ok ? 'ok' : `DOWN: ${String(s.error)}`, String(s.nodeIp ?? ''), String(s.routing ?? ''), String(s.endpoints ?? ''), String(s.identities ?? ''), String(s.policies ?? ''), String(s.clusterNodes ?? ''), String(s.clusterEndpoints ?? ''), ipcacheText(s.ipcache), endpointPolicyText(s.endpointPolicy)];
  }));
  const ct = rows.filter((r) => r.ok && (r as { conntrack?: unknown }).conntrack) as unknown as Array<{ node: string; conntrack: ConntrackRow }>;
  if (ct.length > 0) {
    process.stdout.write('\n');
    printTable(['NODE', 'CONNTRACK', 'BUSIEST ENDPOINT', 'REFUSED FULL/QUOTA', 'LAST SWEEP'], ct.map(({ node, conntrack: c }) => [node, `${c.entries}/${c.capacity} (${percent(c.entries / c.capacity)})`, busiest(c), `${c.drops.full}/${c.drops.quota}`, sweepText(c.gc)]));
  }
  // Each sized map: its size from the agent config, and how full it is.
  const maps = rows.flatMap((r) => ((r as Partial<DatapathStatus>).maps ?? []).map((m) => ({ node: r.node, ...m })));
  if (maps.length > 0) {
    process.stdout.write('\n');
    printTable(['NODE', 'MAP', 'ENTRIES', 'MAX ENTRIES', 'USE', 'NOTE'], maps.map((m) => [
      m.node,
      m.name,
      m.entries ?? '-',
      m.maxEntries,
      m.entries === undefined ? '-' : `${Math.round((m.entries / m.maxEntries) * 1000) / 10}%`,
      m.resized ? `resized at start from ${m.resized.from} (${m.resized.copied} entries copied${m.resized.dropped ? `, ${m.resized.dropped} did not fit` : ''})` : '',
    ]));
  }
  const failing = rows.flatMap((r) => ((r as Partial<DatapathStatus>).endpointPolicy?.failing ?? []).map((f) => ({ node: r.node, ...f })));
  if (failing.length > 0) {
    process.stdout.write('\n');
    printTable(['NODE', 'ENDPOINT', 'POLICY STATE', 'SINCE', 'ERROR'], failing.map((f) => [f.node, f.endpoint, f.state, f.since ?? '', f.error ?? '']));
  }
  if (rows.some((r) => !r.ok)) process.exitCode = 1;
}

/** `conntrack` of /v1/status (packages/agent/src/agent.ts ConntrackReport). */
interface ConntrackRow {
  entries: number;
  capacity: number;
  quota: number;
  topEndpoints: Array<{ id: number; pod?: string; entries: number; quotaUse: number }>;
  drops: { full: number; quota: number };
  gc?: { runs: number; intervalMs: number; lastError?: string; last?: { at: string; scanned: number; expired: number; durationMs: number; nextInMs: number } };
}

function percent(x: number): string {
  return `${(Math.round(x * 1000) / 10).toFixed(1)}%`;
}

function busiest(c: ConntrackRow): string {
  const top = c.topEndpoints[0];
  if (!top) return '-';
  return `${top.pod ?? `endpoint ${top.id}`} ${top.entries}/${c.quota} (${percent(top.quotaUse)})`;
}

function sweepText(gc: ConntrackRow['gc']): string {
  if (!gc?.last) return gc?.lastError ? `failed: ${gc.lastError}` : 'not yet';
  const l = gc.last;
  const ago = Math.max(0, Math.round((Date.now() - Date.parse(l.at)) / 1000));
  return `${ago}s ago: ${l.expired} expired of ${l.scanned}, ${l.durationMs} ms; next in ${Math.round(l.nextInMs / 1000)}s${gc.lastError ? ` (then failed: ${gc.lastError})` : ''}`;
}

/** The part of GET /v1/status about the datapath's maps. */
interface DatapathStatus {
  ipcache: { complete: boolean; entries: number; maxEntries: number; missing: number; incompleteSince?: string };
  maps: Array<{ name: string; maxEntries: number; entries?: number; resized?: { from: number; copied: number; dropped: number } }>;
  endpointPolicy: { ok: number; stale: number; failClosed: number; error: number; failing: Array<{ endpoint: string; id: number; state: string; error?: string; since?: string }> };
}

function ipcacheText(i: DatapathStatus['ipcache'] | undefined): string {
  if (!i) return '';
  return i.complete ? `${i.entries}/${i.maxEntries}` : `INCOMPLETE: ${i.missing} missing (${i.entries}/${i.maxEntries})`;
}

function endpointPolicyText(p: DatapathStatus['endpointPolicy'] | undefined): string {
  if (!p) return '';
  const bad = [p.failClosed && `${p.failClosed} FAIL-CLOSED`, p.stale && `${p.stale} stale`, p.error && `${p.error} error`].filter(Boolean);
  return bad.length === 0 ? `${p.ok} ok` : `${p.ok} ok, ${bad.join(', ')}`;
}

interface EndpointRow {
  id: number;
  namespace: string;
  pod: string;
  ip: string;
  identity: number;
  labels: Record<string, string>;
  policy?: { ingress: string; egress: string; audit: boolean; revision: number; entries: number; state?: string; error?: string };
  regeneration?: { state: string; reason: string; from: number; to?: number; at: string; error?: string; count: number };
}

export async function endpointList(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: common });
  const rows = (await Promise.all(agentsFor(values).map(async ({ node, client }) => (await client.call<EndpointRow[]>('GET', '/v1/endpoints')).map((e) => ({ node, ...e }))))).flat();
  if (parseFormat(values.output) === 'json') return printJson(rows);
  printTable(['NODE', 'ID', 'POD', 'IP', 'IDENTITY', 'INGRESS', 'EGRESS', 'POLICY', 'REGENERATION', 'LABELS'], rows.map((r) => [r.node, r.id, `${r.namespace}/${r.pod}`, r.ip, r.identity, r.policy?.ingress ?? '-', r.policy?.egress ?? '-', policyStateText(r.policy), regenerationText(r.regeneration), Object.entries(r.labels).map(([k, v]) => `${k}=${v}`).join(',')]));
  for (const r of rows) if (r.policy?.error) process.stdout.write(`${r.node} ${r.namespace}/${r.pod}: ${r.policy.state}: ${r.policy.error}\n`);
  for (const r of rows) if (r.regeneration?.error) process.stdout.write(`${r.node} ${r.namespace}/${r.pod}: regeneration ${r.regeneration.state} (${r.regeneration.reason}): ${r.regeneration.error}\n`);
}

/** "-" for an endpoint never regenerated; else its state and the identity change, e.g. "ready 65800->65801". */
function regenerationText(r: EndpointRow['regeneration']): string {
  if (!r) return '-';
  return `${r.state} ${r.from}->${r.to ?? '?'}`;
}

/** ok, stale (old policy in force), FAIL-CLOSED (all traffic dropped) or error. */
function policyStateText(p: EndpointRow['policy']): string {
  if (!p) return '-';
  const state = p.state ?? 'ok';
  return state === 'fail-closed' ? 'FAIL-CLOSED' : state;
}

export async function bpf(argv: string[]): Promise<void> {
  const [map, verb, ...rest] = argv;
  const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: common });
  const format = parseFormat(values.output);
  if (map === 'ipcache' && verb === 'list') {
    const rows = (await Promise.all(agentsFor(values).map(async ({ node, client }) => (await client.call<Array<{ cidr: string; identity: number; tunnelIp?: string; flags: number }>>('GET', '/v1/bpf/ipcache')).map((e) => ({ node, ...e }))))).flat();
    if (format === 'json') return printJson(rows);
    return printTable(['NODE', 'PREFIX', 'IDENTITY', 'TUNNEL ENDPOINT', 'FLAGS'], rows.map((r) => [r.node, r.cidr, r.identity, r.tunnelIp ?? '-', flagNames(r.flags)]));
  }
  if (map === 'nodes' && verb === 'list') {
    const rows = (await Promise.all(agentsFor(values).map(async ({ node, client }) => (await client.call<Array<{ addr: string; nodeIp: string; routerIp?: string; clusterId: number; flags: number }>>('GET', '/v1/bpf/nodes')).map((e) => ({ node, ...e }))))).flat();
    if (format === 'json') return printJson(rows);
    return printTable(['NODE', 'ADDRESS', 'OF NODE', 'ROUTER IP', 'CLUSTER', 'CLEAR TUNNEL'], rows.map((r) => [r.node, r.addr, r.nodeIp, r.routerIp ?? '-', r.clusterId || '(unknown)', r.flags & 0x1 ? 'refused' : 'accepted']));
  }
  if (map === 'lb' && verb === 'list') {
    const rows = (await Promise.all(agentsFor(values).map(async ({ node, client }) => (await client.call<Array<{ vip: string; port: number; protocol: string; backends: Array<{ ip: string; port: number }> }>>('GET', '/v1/bpf/lb')).map((e) => ({ node, ...e }))))).flat();
    if (format === 'json') return printJson(rows);
    return printTable(['NODE', 'FRONTEND', 'BACKENDS'], rows.map((r) => [r.node, `${r.vip}:${r.port}/${r.protocol}`, r.backends.map((b) => `${b.ip}:${b.port}`).join(' ') || '(none: dropped)']));
  }
  if (map === 'policy' && verb === 'get') {
    const ref = positionals[0];
    if (!ref) throw new UsageError('Usage: weft bpf policy get ENDPOINT (id, IP or namespace/pod) [--node NODE]');
    const found: unknown[] = [];
    let lastError: Error | undefined;
    for (const { node, client } of agentsFor(values)) {
      try {
        found.push({ node, ...(await client.call<Record<string, unknown>>('GET', `/v1/bpf/policy?endpoint=${encodeURIComponent(ref)}`)) });
      } catch (err) {
        lastError = err as Error;
      }
    }
    if (found.length === 0) throw lastError ?? new UsageError(`Endpoint ${ref} not found`);
    if (format === 'json') return printJson(found.length === 1 ? found[0] : found);
    for (const f of found as Array<{ node: string; endpoint: { namespace: string; pod: string; id: number }; entries: Array<{ egress: boolean; identity: number; protocol: number; port?: { port: number; bits: number }; deny: boolean; rule?: string; packets: number }> }>) {
      process.stdout.write(`${f.endpoint.namespace}/${f.endpoint.pod} (endpoint ${f.endpoint.id} on ${f.node})\n`);
      printTable(['DIRECTION', 'IDENTITY', 'PROTOCOL', 'PORTS', 'VERDICT', 'PACKETS', 'RULE'], f.entries.map((e) => [e.egress ? 'egress' : 'ingress', e.identity === 0 ? 'any' : e.identity, e.protocol === 0 ? 'any' : e.protocol, portText(e.port), e.deny ? 'deny' : 'allow', e.packets, e.rule ?? '']));
    }
    return;
  }
  throw new UsageError('Usage: weft bpf ipcache list | weft bpf nodes list | weft bpf lb list | weft bpf policy get ENDPOINT');
}

export async function policyGet(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: common });
  const [{ client }] = agentsFor(values);
  const policies = await client!.call<Array<{ id: string; enforces: string[]; rules: unknown[]; audit: boolean }>>('GET', '/v1/policies');
  if (parseFormat(values.output) === 'json') return printJson(policies);
  printTable(['POLICY', 'ENFORCES', 'RULES', 'AUDIT'], policies.map((p) => [p.id, p.enforces.join(',') || '-', p.rules.length, p.audit ? 'yes' : 'no']));
}

function portText(p?: { port: number; bits: number }): string {
  if (!p) return 'any';
  const size = 2 ** (16 - p.bits);
  return size === 1 ? String(p.port) : `${p.port}-${p.port + size - 1}`;
}

function flagNames(flags: number): string {
  const out: string[] = [];
  if (flags & 1) out.push('local-endpoint');
  if (flags & 2) out.push('node');
  if (flags & 4) out.push('encrypted');
  if (flags & 8) out.push('encrypt-missing');
  if (flags & 0x10) out.push('exact');
  return out.join(',') || '-';
}
