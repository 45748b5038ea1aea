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
  printTable(['NODE', 'AGENT', 'IP', 'ROUTING', 'ENDPOINTS', 'IDENTITIES', 'POLICIES', 'CLUSTER NODES', 'CLUSTER ENDPOINTS'], rows.map((r) => {
    const s = r as Record<string, unknown>;
    return [String(s.node), s.ok ? 'ok' : `DOWN: ${String(s.error)}`, String(s.nodeIp ?? ''), String(s.routing ?? ''), String(s.endpoints ?? ''), String(s.identities ?? ''), String(s.policies ?? ''), String(s.clusterNodes ?? ''), String(s.clusterEndpoints ?? '')];
  }));
  if (rows.some((r) => !r.ok)) process.exitCode = 1;
}

interface EndpointRow {
  id: number;
  namespace: string;
  pod: string;
  ip: string;
  identity: number;
  labels: Record<string, string>;
  policy?: { ingress: string; egress: string; audit: boolean; revision: number; entries: number };
}

export async function endpointList(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: common });
  const rows = (await Promise.all(agentsFor(values).map(async ({ node, client }) => (await client.call<EndpointRow[]>('GET', '/v1/endpoints')).map((e) => ({ node, ...e }))))).flat();
  if (parseFormat(values.output) === 'json') return printJson(rows);
  printTable(['NODE', 'ID', 'POD', 'IP', 'IDENTITY', 'INGRESS', 'EGRESS', 'LABELS'], rows.map((r) => [r.node, r.id, `${r.namespace}/${r.pod}`, r.ip, r.identity, r.policy?.ingress ?? '-', r.policy?.egress ?? '-', Object.entries(r.labels).map(([k, v]) => `${k}=${v}`).join(',')]));
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
  throw new UsageError('Usage: weft bpf ipcache list | weft bpf lb list | weft bpf policy get ENDPOINT');
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
  return out.join(',') || '-';
}
