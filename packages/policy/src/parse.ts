/**
 * Parsing policy documents (already decoded from YAML or JSON) into the
 * internal model, with errors that name the field: Kubernetes NetworkPolicy
 * (networking.k8s.io/v1) and Weft's WeftNetworkPolicy / WeftClusterwideNetworkPolicy
 * (weft.io/v1, shaped like CiliumNetworkPolicy so its users feel at home).
 * Nothing is partially accepted: a document parses completely or throws.
 */
import { InvalidPolicyError } from './errors.js';
import { parseCidr, cidrContains } from '@weft/common';
import { PORT_NAME_RE, type Direction, type Entity, type Peer, type Policy, type PortRule, type Protocol, type Rule, type Selector, type SelectorOperator } from './types.js';

const ENTITIES: readonly Entity[] = ['world', 'cluster', 'host', 'remote-node', 'all'];
const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP', 'ICMP', 'ANY'];
const OPERATORS: readonly SelectorOperator[] = ['In', 'NotIn', 'Exists', 'DoesNotExist'];
const NAME_RE = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const LABEL_KEY_RE = /^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE_RE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

type Json = unknown;

class Ctx {
  constructor(readonly source: string) {}
  fail(path: string, problem: string): never {
    throw new InvalidPolicyError(this.source, path, problem);
  }
  object(v: Json, path: string): Record<string, Json> {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(path, `must be an object, got ${describe(v)}`);
    return v as Record<string, Json>;
  }
  array(v: Json, path: string): Json[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) this.fail(path, `must be a list, got ${describe(v)}`);
    return v;
  }
  string(v: Json, path: string): string {
    if (typeof v !== 'string') this.fail(path, `must be a string, got ${describe(v)}`);
    return v;
  }
  only(obj: Record<string, Json>, path: string, allowed: readonly string[]): void {
    for (const k of Object.keys(obj)) if (!allowed.includes(k)) this.fail(`${path}.${k}`, `unknown field (expected one of ${allowed.join(', ')})`);
  }
}

function describe(v: Json): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)}`;
}

/** Cilium-style selector keys may carry a `k8s:` source prefix; identity selectors use the k8s source. */
function normalizeKey(key: string): string {
  return key.startsWith('k8s:') ? key.slice(4) : key;
}

function parseSelector(ctx: Ctx, v: Json, path: string): Selector {
  if (v === undefined || v === null) return { matchLabels: {}, matchExpressions: [] };
  const o = ctx.object(v, path);
  ctx.only(o, path, ['matchLabels', 'matchExpressions']);
  const matchLabels: Record<string, string> = {};
  if (o.matchLabels !== undefined && o.matchLabels !== null) {
    for (const [k, val] of Object.entries(ctx.object(o.matchLabels, `${path}.matchLabels`))) {
      const key = normalizeKey(k);
      if (!LABEL_KEY_RE.test(key)) ctx.fail(`${path}.matchLabels.${k}`, 'is not a valid label key');
      const value = ctx.string(val, `${path}.matchLabels.${k}`);
      if (!LABEL_VALUE_RE.test(value)) ctx.fail(`${path}.matchLabels.${k}`, `value ${JSON.stringify(value)} is not a valid label value`);
      matchLabels[key] = value;
    }
  }
  const matchExpressions = ctx.array(o.matchExpressions, `${path}.matchExpressions`).map((e, i) => {
    const p = `${path}.matchExpressions[${i}]`;
    const eo = ctx.object(e, p);
    ctx.only(eo, p, ['key', 'operator', 'values']);
    const key = normalizeKey(ctx.string(eo.key, `${p}.key`));
    if (!LABEL_KEY_RE.test(key)) ctx.fail(`${p}.key`, `${JSON.stringify(key)} is not a valid label key`);
    const operator = ctx.string(eo.operator, `${p}.operator`) as SelectorOperator;
    if (!OPERATORS.includes(operator)) ctx.fail(`${p}.operator`, `${JSON.stringify(operator)} is not one of ${OPERATORS.join(', ')}`);
    const values = ctx.array(eo.values, `${p}.values`).map((x, j) => ctx.string(x, `${p}.values[${j}]`));
    if ((operator === 'In' || operator === 'NotIn') && values.length === 0) ctx.fail(`${p}.values`, `must not be empty for operator ${operator}`);
    if ((operator === 'Exists' || operator === 'DoesNotExist') && values.length > 0) ctx.fail(`${p}.values`, `must be empty for operator ${operator}`);
    return { key, operator, values };
  });
  return { matchLabels, matchExpressions };
}

function parsePort(ctx: Ctx, v: Json, path: string): number {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 65535) ctx.fail(path, `must be a port number 1-65535, got ${describe(v)}`);
  return n;
}

function parseProtocol(ctx: Ctx, v: Json, path: string, fallback: Protocol): Protocol {
  if (v === undefined || v === null) return fallback;
  const p = ctx.string(v, path).toUpperCase() as Protocol;
  if (!PROTOCOLS.includes(p)) ctx.fail(path, `${JSON.stringify(v)} is not one of ${PROTOCOLS.join(', ')}`);
  return p;
}

/** `named`: whether the port may be a name (NetworkPolicy; Weft's policies, like their CRD schema, take numbers). */
function parsePortRule(ctx: Ctx, v: Json, path: string, fallback: Protocol, named: boolean): PortRule {
  const o = ctx.object(v, path);
  ctx.only(o, path, ['port', 'endPort', 'protocol']);
  const protocol = parseProtocol(ctx, o.protocol, `${path}.protocol`, fallback);
  if (o.port === undefined || o.port === null || o.port === '0' || o.port === 0) {
    if (o.endPort !== undefined) ctx.fail(`${path}.endPort`, 'needs port');
    return { protocol };
  }
  if (protocol === 'ICMP') ctx.fail(`${path}.port`, 'ICMP has no ports');
  if (typeof o.port === 'string' && !/^\d+$/.test(o.port)) {
    if (!named) ctx.fail(`${path}.port`, `named port ${JSON.stringify(o.port)} is not supported here (NetworkPolicy takes names); use a number`);
    // A named port: resolved per destination pod from its containers' ports (resolve.ts).
    if (!PORT_NAME_RE.test(o.port)) ctx.fail(`${path}.port`, `${JSON.stringify(o.port)} is neither a port number nor a valid port name (1-15 of a-z, 0-9 and -, at least one letter)`);
    if (o.endPort !== undefined && o.endPort !== null) ctx.fail(`${path}.endPort`, `needs a numeric port, not the named port ${JSON.stringify(o.port)}`);
    return { protocol, name: o.port };
  }
  const port = parsePort(ctx, o.port, `${path}.port`);
  if (o.endPort === undefined || o.endPort === null) return { protocol, port };
  const endPort = parsePort(ctx, o.endPort, `${path}.endPort`);
  if (endPort < port) ctx.fail(`${path}.endPort`, `${endPort} is below port ${port}`);
  return { protocol, port, endPort };
}

function parseCidrPeer(ctx: Ctx, cidr: Json, except: Json, path: string): Peer {
  const c = ctx.string(cidr, `${path}.cidr`);
  const parsed = parseCidr(c);
  if (typeof parsed === 'string') ctx.fail(`${path}.cidr`, parsed);
  const ex = ctx.array(except, `${path}.except`).map((e, i) => {
    const s = ctx.string(e, `${path}.except[${i}]`);
    const pe = parseCidr(s);
    if (typeof pe === 'string') ctx.fail(`${path}.except[${i}]`, pe);
    if (!cidrContains(parsed, pe)) ctx.fail(`${path}.except[${i}]`, `${s} is not within ${c}`);
    return s;
  });
  return { kind: 'cidr', cidr: c, except: ex };
}

function meta(ctx: Ctx, doc: Record<string, Json>, namespaced: boolean): { name: string; namespace?: string } {
  const m = ctx.object(doc.metadata, 'metadata');
  const name = ctx.string(m.name, 'metadata.name');
  if (!NAME_RE.test(name)) ctx.fail('metadata.name', `${JSON.stringify(name)} must be a DNS subdomain (lowercase letters, digits, '-', '.')`);
  if (!namespaced) {
    if (m.namespace !== undefined) ctx.fail('metadata.namespace', 'a clusterwide policy has no namespace');
    return { name };
  }
  const namespace = m.namespace === undefined ? 'default' : ctx.string(m.namespace, 'metadata.namespace');
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(namespace)) ctx.fail('metadata.namespace', `${JSON.stringify(namespace)} is not a valid namespace name`);
  return { name, namespace };
}

/** Kubernetes networking.k8s.io/v1 NetworkPolicy. */
export function parseNetworkPolicy(doc: Json, cluster: string): Policy {
  const ctx = new Ctx(sourceName(doc, 'NetworkPolicy'));
  const d = ctx.object(doc, '(document)');
  const { name, namespace } = meta(ctx, d, true);
  const spec = ctx.object(d.spec, 'spec');
  ctx.only(spec, 'spec', ['podSelector', 'policyTypes', 'ingress', 'egress']);
  if (spec.podSelector === undefined) ctx.fail('spec.podSelector', 'is required (use {} to select every pod of the namespace)');
  const subject = parseSelector(ctx, spec.podSelector, 'spec.podSelector');
  const listed = ctx.array(spec.policyTypes, 'spec.policyTypes').map((t, i) => {
    const s = ctx.string(t, `spec.policyTypes[${i}]`);
    if (s !== 'Ingress' && s !== 'Egress') ctx.fail(`spec.policyTypes[${i}]`, `${JSON.stringify(s)} is not Ingress or Egress`);
    return s;
  });
  // The API server's defaulting (SetDefaults_NetworkPolicy), so a file means here what it means in a
  // cluster: no types listed (absent or empty) is Ingress, and Egress too when there are egress rules;
  // an empty `egress: []` alone isolates nothing.
  const types = listed.length > 0 ? listed : ['Ingress', ...(ctx.array(spec.egress, 'spec.egress').length > 0 ? ['Egress'] : [])];
  const rules: Rule[] = [];
  for (const direction of ['ingress', 'egress'] as Direction[]) {
    const peerField = direction === 'ingress' ? 'from' : 'to';
    ctx.array(spec[direction], `spec.${direction}`).forEach((r, i) => {
      const p = `spec.${direction}[${i}]`;
      const ro = ctx.object(r, p);
      ctx.only(ro, p, [peerField, 'ports']);
      const peers = ctx.array(ro[peerField], `${p}.${peerField}`).map((peer, j): Peer => {
        const pp = `${p}.${peerField}[${j}]`;
        const po = ctx.object(peer, pp);
        ctx.only(po, pp, ['podSelector', 'namespaceSelector', 'ipBlock']);
        if (po.ipBlock !== undefined) {
          if (po.podSelector !== undefined || po.namespaceSelector !== undefined) ctx.fail(pp, 'ipBlock cannot be combined with podSelector or namespaceSelector');
          const ib = ctx.object(po.ipBlock, `${pp}.ipBlock`);
          ctx.only(ib, `${pp}.ipBlock`, ['cidr', 'except']);
          return parseCidrPeer(ctx, ib.cidr, ib.except, `${pp}.ipBlock`);
        }
        if (po.podSelector === undefined && po.namespaceSelector === undefined) ctx.fail(pp, 'needs podSelector, namespaceSelector or ipBlock');
        const pods = parseSelector(ctx, po.podSelector, `${pp}.podSelector`);
        if (po.namespaceSelector !== undefined) return { kind: 'endpoints', pods, namespaces: parseSelector(ctx, po.namespaceSelector, `${pp}.namespaceSelector`) };
        return { kind: 'endpoints', pods, namespace: namespace! };
      });
      const ports = ctx.array(ro.ports, `${p}.ports`).map((x, j) => parsePortRule(ctx, x, `${p}.ports[${j}]`, 'TCP', true));
      rules.push({ direction, action: 'allow', peers, ports });
    });
  }
  const enforces: Direction[] = [];
  if (types.includes('Ingress')) enforces.push('ingress');
  if (types.includes('Egress')) enforces.push('egress');
  return { id: `NetworkPolicy/${namespace}/${name}`, kind: 'NetworkPolicy', name, namespace: namespace!, cluster, subject, enforces, rules, audit: false };
}

const WEFT_RULE_FIELDS = {
  ingress: ['fromEndpoints', 'fromEntities', 'fromCIDR', 'fromCIDRSet', 'toPorts'],
  egress: ['toEndpoints', 'toEntities', 'toCIDR', 'toCIDRSet', 'toPorts'],
} as const;

/** weft.io/v1 WeftNetworkPolicy (namespaced) and WeftClusterwideNetworkPolicy. */
export function parseWeftPolicy(doc: Json, cluster: string): Policy {
  const d0 = doc as Record<string, Json> | null;
  const kind = d0 && typeof d0 === 'object' ? d0.kind : undefined;
  const clusterwide = kind === 'WeftClusterwideNetworkPolicy';
  const ctx = new Ctx(sourceName(doc, String(kind)));
  const d = ctx.object(doc, '(document)');
  if (kind !== 'WeftNetworkPolicy' && !clusterwide) ctx.fail('kind', `${JSON.stringify(kind)} is not WeftNetworkPolicy or WeftClusterwideNetworkPolicy`);
  const { name, namespace } = meta(ctx, d, !clusterwide);
  const spec = ctx.object(d.spec, 'spec');
  ctx.only(spec, 'spec', ['endpointSelector', 'ingress', 'ingressDeny', 'egress', 'egressDeny', 'audit', 'description']);
  if (spec.endpointSelector === undefined) ctx.fail('spec.endpointSelector', 'is required (use {} to select every endpoint)');
  const subject = parseSelector(ctx, spec.endpointSelector, 'spec.endpointSelector');
  if (spec.audit !== undefined && typeof spec.audit !== 'boolean') ctx.fail('spec.audit', `must be true or false, got ${describe(spec.audit)}`);
  const rules: Rule[] = [];
  const enforces = new Set<Direction>();
  for (const [field, direction, action] of [
    ['ingress', 'ingress', 'allow'],
    ['ingressDeny', 'ingress', 'deny'],
    ['egress', 'egress', 'allow'],
    ['egressDeny', 'egress', 'deny'],
  ] as const) {
    const list = ctx.array(spec[field], `spec.${field}`);
    if (spec[field] !== undefined) enforces.add(direction);
    list.forEach((r, i) => {
      const p = `spec.${field}[${i}]`;
      const ro = ctx.object(r, p);
      const f = WEFT_RULE_FIELDS[direction];
      ctx.only(ro, p, f);
      const peers: Peer[] = [];
      ctx.array(ro[f[0]], `${p}.${f[0]}`).forEach((s, j) => {
        const pods = parseSelector(ctx, s, `${p}.${f[0]}[${j}]`);
        const mentionsNamespace = Object.keys(pods.matchLabels).includes('io.kubernetes.pod.namespace') || pods.matchExpressions.some((e) => e.key === 'io.kubernetes.pod.namespace');
        peers.push(clusterwide || mentionsNamespace ? { kind: 'endpoints', pods, namespaces: { matchLabels: {}, matchExpressions: [] } } : { kind: 'endpoints', pods, namespace: namespace! });
      });
      ctx.array(ro[f[1]], `${p}.${f[1]}`).forEach((e, j) => {
        const entity = ctx.string(e, `${p}.${f[1]}[${j}]`) as Entity;
        if (!ENTITIES.includes(entity)) ctx.fail(`${p}.${f[1]}[${j}]`, `${JSON.stringify(entity)} is not one of ${ENTITIES.join(', ')}`);
        peers.push({ kind: 'entity', entity });
      });
      ctx.array(ro[f[2]], `${p}.${f[2]}`).forEach((c, j) => peers.push(parseCidrPeer(ctx, c, undefined, `${p}.${f[2]}[${j}]`)));
      ctx.array(ro[f[3]], `${p}.${f[3]}`).forEach((c, j) => {
        const co = ctx.object(c, `${p}.${f[3]}[${j}]`);
        ctx.only(co, `${p}.${f[3]}[${j}]`, ['cidr', 'except']);
        peers.push(parseCidrPeer(ctx, co.cidr, co.except, `${p}.${f[3]}[${j}]`));
      });
      const ports: PortRule[] = [];
      ctx.array(ro.toPorts, `${p}.toPorts`).forEach((tp, j) => {
        const tpo = ctx.object(tp, `${p}.toPorts[${j}]`);
        ctx.only(tpo, `${p}.toPorts[${j}]`, ['ports']);
        ctx.array(tpo.ports, `${p}.toPorts[${j}].ports`).forEach((x, k) => ports.push(parsePortRule(ctx, x, `${p}.toPorts[${j}].ports[${k}]`, 'ANY', false)));
      });
      rules.push({ direction, action, peers, ports });
    });
  }
  const id = clusterwide ? `WeftClusterwideNetworkPolicy/${name}` : `WeftNetworkPolicy/${namespace}/${name}`;
  const policy: Policy = { id, kind: clusterwide ? 'WeftClusterwideNetworkPolicy' : 'WeftNetworkPolicy', name, cluster, subject, enforces: [...enforces], rules, audit: spec.audit === true };
  if (!clusterwide) policy.namespace = namespace!;
  return policy;
}

/** Any supported policy document, by apiVersion and kind. */
export function parsePolicy(doc: Json, cluster: string): Policy {
  const d = doc as Record<string, Json> | null;
  const apiVersion = d && typeof d === 'object' ? d.apiVersion : undefined;
  const kind = d && typeof d === 'object' ? d.kind : undefined;
  if (apiVersion === 'networking.k8s.io/v1' && kind === 'NetworkPolicy') return parseNetworkPolicy(doc, cluster);
  if (apiVersion === 'weft.io/v1' && (kind === 'WeftNetworkPolicy' || kind === 'WeftClusterwideNetworkPolicy')) return parseWeftPolicy(doc, cluster);
  throw new InvalidPolicyError(sourceName(doc, String(kind)), 'apiVersion/kind', `${String(apiVersion)}/${String(kind)} is not a policy (networking.k8s.io/v1 NetworkPolicy, weft.io/v1 WeftNetworkPolicy or WeftClusterwideNetworkPolicy)`);
}

function sourceName(doc: Json, kind: string): string {
  const m = (doc as { metadata?: { name?: unknown; namespace?: unknown } } | null)?.metadata;
  const name = typeof m?.name === 'string' ? m.name : '(unnamed)';
  return typeof m?.namespace === 'string' ? `${kind} ${m.namespace}/${name}` : `${kind} ${name}`;
}
