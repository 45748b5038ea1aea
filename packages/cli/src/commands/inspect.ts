/** Read-only views of agents: status, endpoints, BPF maps, policies. All take `-o json`. */
import type { AgentClient } from '@weft/agent/api-client';
import { COMMANDS } from '../command-table.js';
import { agentsFor } from '../context.js';
import { parseFormat, printJson, printTable, UsageError } from '../output.js';
import { parseCommandArgs } from '../parse-command-args.js';

export async function status(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS.status, argv);
  const rows = await Promise.all(agentsFor(values).map(async ({ node, client }) => {
    try {
      return { ...(await client.status()), node, ok: true as const };
    } catch (err) {
      return { node, ok: false as const, error: (err as Error).message };
    }
  }));
  if (parseFormat(values.output) === 'json') return printJson(rows);
  printTable(['NODE', 'AGENT', 'IP', 'ROUTING', 'ENDPOINTS', 'IDENTITIES', 'POLICIES', 'CLUSTER NODES', 'CLUSTER ENDPOINTS', 'IPCACHE', 'ENDPOINT POLICY'], rows.map((s) =>
    s.ok
      ? [s.node, 'ok', s.nodeIp, s.routing, s.endpoints, s.identities, s.policies, s.clusterNodes, s.clusterEndpoints, ipcacheText(s.ipcache), endpointPolicyText(s.endpointPolicy)]
      : [s.node, `DOWN: ${s.error}`, '', '', '', '', '', '', '', '', ''],
  ));
  const ct = rows.flatMap((r) => (r.ok ? [{ node: r.node, conntrack: r.conntrack }] : []));
  if (ct.length > 0) {
    process.stdout.write('\n');
    printTable(['NODE', 'CONNTRACK', 'BUSIEST ENDPOINT', 'REFUSED FULL/QUOTA', 'LAST SWEEP'], ct.map(({ node, conntrack: c }) => [node, `${c.entries}/${c.capacity} (${percent(c.entries / c.capacity)})`, busiest(c), `${c.drops.full}/${c.drops.quota}`, sweepText(c.gc)]));
  }
  // Each sized map: its size from the agent config, and how full it is.
  const maps = rows.flatMap((r) => (r.ok ? r.maps : []).map((m) => ({ node: r.node, ...m })));
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
  const failing = rows.flatMap((r) => (r.ok ? r.endpointPolicy.failing : []).map((f) => ({ node: r.node, ...f })));
  if (failing.length > 0) {
    process.stdout.write('\n');
    printTable(['NODE', 'ENDPOINT', 'POLICY STATE', 'SINCE', 'ERROR'], failing.map((f) => [f.node, f.endpoint, f.state, f.since ?? '', f.error ?? '']));
  }
  if (rows.some((r) => !r.ok)) process.exitCode = 1;
}

type Status = Awaited<ReturnType<AgentClient['status']>>;
type ConntrackRow = Status['conntrack'];

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

function ipcacheText(i: Status['ipcache'] | undefined): string {
  if (!i) return '';
  return i.complete ? `${i.entries}/${i.maxEntries}` : `INCOMPLETE: ${i.missing} missing (${i.entries}/${i.maxEntries})`;
}

function endpointPolicyText(p: Status['endpointPolicy'] | undefined): string {
  if (!p) return '';
  const bad = [p.failClosed && `${p.failClosed} FAIL-CLOSED`, p.stale && `${p.stale} stale`, p.error && `${p.error} error`].filter(Boolean);
  return bad.length === 0 ? `${p.ok} ok` : `${p.ok} ok, ${bad.join(', ')}`;
}

type EndpointRow = Awaited<ReturnType<AgentClient['endpoints']>>[number];

export async function endpointList(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS['endpoint list'], argv);
  const rows = (await Promise.all(agentsFor(values).map(async ({ node, client }) => (await client.endpoints()).map((e) => ({ node, ...e }))))).flat();
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

export async function bpfIpcacheList(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS['bpf ipcache list'], argv);
  const format = parseFormat(values.output);
  const rows = (await Promise.all(agentsFor(values).map(async ({ node, client }) => (await client.ipcache()).map((e) => ({ node, ...e }))))).flat();
  if (format === 'json') return printJson(rows);
  printTable(['NODE', 'PREFIX', 'IDENTITY', 'TUNNEL ENDPOINT', 'FLAGS'], rows.map((r) => [r.node, r.cidr, r.identity, r.tunnelIp ?? '-', flagNames(r.flags)]));
}

export async function bpfNodesList(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS['bpf nodes list'], argv);
  const format = parseFormat(values.output);
  const rows = (await Promise.all(agentsFor(values).map(async ({ node, client }) => (await client.nodes()).map((e) => ({ node, ...e }))))).flat();
  if (format === 'json') return printJson(rows);
  printTable(['NODE', 'ADDRESS', 'OF NODE', 'ROUTER IP', 'CLUSTER', 'CLEAR TUNNEL'], rows.map((r) => [r.node, r.addr, r.nodeIp, r.routerIp ?? '-', r.clusterId || '(unknown)', r.flags & 0x1 ? 'refused' : 'accepted']));
}

export async function bpfLbList(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS['bpf lb list'], argv);
  const format = parseFormat(values.output);
  const rows = (await Promise.all(agentsFor(values).map(async ({ node, client }) => (await client.lb()).map((e) => ({ node, ...e }))))).flat();
  if (format === 'json') return printJson(rows);
  printTable(['NODE', 'FRONTEND', 'BACKENDS'], rows.map((r) => [r.node, `${r.vip}:${r.port}/${r.protocol}`, r.backends.map((b) => `${b.ip}:${b.port}`).join(' ') || '(none: dropped)']));
}

export async function bpfPolicyGet(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandArgs(COMMANDS['bpf policy get'], argv);
  const format = parseFormat(values.output);
  const ref = positionals[0]!;
  const found: Array<{ node: string } & Awaited<ReturnType<AgentClient['policyMap']>>> = [];
  let lastError: Error | undefined;
  for (const { node, client } of agentsFor(values)) {
    try {
      found.push({ node, ...(await client.policyMap(ref)) });
    } catch (err) {
      lastError = err as Error;
    }
  }
  if (found.length === 0) throw lastError ?? new UsageError(`Endpoint ${ref} not found`);
  if (format === 'json') return printJson(found.length === 1 ? found[0] : found);
  for (const f of found) {
    process.stdout.write(`${f.endpoint.namespace}/${f.endpoint.pod} (endpoint ${f.endpoint.id} on ${f.node})\n`);
    printTable(['DIRECTION', 'IDENTITY', 'PROTOCOL', 'PORTS', 'VERDICT', 'PACKETS', 'RULE'], f.entries.map((e) => [e.egress ? 'egress' : 'ingress', e.identity === 0 ? 'any' : e.identity, e.protocol === 0 ? 'any' : e.protocol, portText(e.port), e.deny ? 'deny' : 'allow', e.packets, e.rule ?? '']));
  }
}

export async function policyGet(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS['policy get'], argv);
  const [{ client }] = agentsFor(values);
  const policies = await client!.policies();
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
