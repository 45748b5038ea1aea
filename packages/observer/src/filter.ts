/**
 * Flow filters, compiled once per request into one predicate (a stream of 50k flows/s runs it per
 * flow; nothing here parses per flow). Semantics as Hubble's: a filter matches when every field it
 * sets matches, a field with several values when any value does; a flow passes when it matches an
 * allow filter (or there is none) and no deny filter. Every value is checked when compiled: a bad
 * one is a FlowFilterError naming the field and value, never a filter that silently matches nothing.
 */
import { parseCidr, parseIpv4, prefixMask } from '@weft/common';
import { FlowFilterError } from './errors.js';
import { TCP_FLAG_NAMES, type Flow, type FlowEndpoint, type FlowFilter, type FlowFilterInput, type TcpFlags } from './types.js';

export type FlowPredicate = (flow: Flow) => boolean;

const acceptAll: FlowPredicate = () => true;

/**
 * `names`: what an error calls the lists (a request's `allow`/`deny`; a configuration file's keys,
 * such as `allowList`), so it points at the entry the user wrote.
 */
export function compileFlowFilters(allow: readonly FlowFilterInput[] = [], deny: readonly FlowFilterInput[] = [], names: { allow: string; deny: string } = { allow: 'allow', deny: 'deny' }): FlowPredicate {
  const list = (filters: readonly FlowFilterInput[], name: string): FlowPredicate[] => {
    if (!Array.isArray(filters)) throw new FlowFilterError(name, filters, 'must be a list of filters');
    return filters.map((f, i) => compileFilter(f, `${name}[${i}]`));
  };
  const allows = list(allow, names.allow);
  const denies = list(deny, names.deny);
  if (allows.length === 0 && denies.length === 0) return acceptAll;
  return (flow) => (allows.length === 0 || allows.some((p) => p(flow))) && !denies.some((p) => p(flow));
}

type Side = (flow: Flow) => FlowEndpoint | null;
const src: Side = (f) => f.source;
const dst: Side = (f) => f.destination;

/** Every field of FlowFilter: a filter read from JSON (a configuration file) may name no other. */
const FILTER_FIELDS: { readonly [K in keyof FlowFilter]: true } = {
  sourcePod: true, destinationPod: true, sourceNamespace: true, destinationNamespace: true, sourceLabel: true, destinationLabel: true, sourceIdentity: true, destinationIdentity: true,
  sourceIp: true, destinationIp: true, sourcePort: true, destinationPort: true, destinationService: true, sourceCluster: true, destinationCluster: true, protocol: true,
  verdict: true, dropReason: true, cluster: true, node: true, encrypted: true, tcpFlags: true, trafficDirection: true, reply: true, policy: true,
};

/** The fields a FlowFilter may set (its JSON names). */
export const FLOW_FILTER_FIELDS: readonly string[] = Object.keys(FILTER_FIELDS);

function compileFilter(filter: FlowFilterInput, where: string): FlowPredicate {
  if (typeof filter !== 'object' || filter === null || Array.isArray(filter)) throw new FlowFilterError(where, filter, 'a filter is an object of fields, e.g. {"sourcePod": ["shop/"]}');
  const f = filter as Partial<FlowFilter>;
  const parts: FlowPredicate[] = [];
  const field = (name: string): string => `${where}.${name}`;
  // A misspelt field would otherwise be ignored, and the filter match more than was meant.
  for (const [name, v] of Object.entries(f)) {
    if (!Object.hasOwn(FILTER_FIELDS, name)) throw new FlowFilterError(field(name), v, `is not a flow filter field (${Object.keys(FILTER_FIELDS).join(', ')})`);
    if (v !== undefined && !Array.isArray(v)) throw new FlowFilterError(field(name), v, 'must be a list of values');
  }
  const has = <T>(v: readonly T[] | undefined): v is readonly T[] => v !== undefined && v.length > 0;

  for (const [name, side] of [['sourcePod', src], ['destinationPod', dst]] as const) {
    const v = f[name];
    if (has(v)) parts.push(onSide(side, anyOf(v.map((p) => podMatcher(field(name), p)))));
  }
  for (const [name, side] of [['sourceNamespace', src], ['destinationNamespace', dst]] as const) {
    const v = f[name];
    if (has(v)) {
      const set = new Set(v.map((ns) => nonEmpty(field(name), ns)));
      parts.push(onSide(side, (e) => set.has(e.namespace)));
    }
  }
  for (const [name, side] of [['sourceLabel', src], ['destinationLabel', dst]] as const) {
    const v = f[name];
    if (has(v)) parts.push(onSide(side, anyOf(v.map((s) => labelSelector(field(name), s)))));
  }
  for (const [name, side] of [['sourceIdentity', src], ['destinationIdentity', dst]] as const) {
    const v = f[name];
    if (has(v)) {
      for (const id of v) if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) throw new FlowFilterError(field(name), id, 'an identity is an integer 0-4294967295');
      const set = new Set(v);
      parts.push(onSide(side, (e) => set.has(e.identity)));
    }
  }
  for (const [name, side] of [['sourceIp', src], ['destinationIp', dst]] as const) {
    const v = f[name];
    if (has(v)) parts.push(onSide(side, anyOf(v.map((c) => ipMatcher(field(name), c)))));
  }
  for (const [name, side] of [['sourcePort', src], ['destinationPort', dst]] as const) {
    const v = f[name];
    if (has(v)) {
      for (const p of v) if (!Number.isInteger(p) || p < 0 || p > 65535) throw new FlowFilterError(field(name), p, 'a port is 0-65535');
      const set = new Set(v);
      parts.push(onSide(side, (e) => set.has(e.port)));
    }
  }
  for (const [name, side] of [['sourceCluster', src], ['destinationCluster', dst]] as const) {
    const v = f[name];
    if (has(v)) {
      const set = new Set(v.map((c) => nonEmpty(field(name), c)));
      parts.push(onSide(side, (e) => set.has(e.cluster)));
    }
  }
  if (has(f.destinationService)) {
    const set = new Set(f.destinationService.map((s) => namespaced(field('destinationService'), s)));
    parts.push((flow) => flow.destinationService !== null && flow.destinationService.name !== '' && set.has(`${flow.destinationService.namespace}/${flow.destinationService.name}`));
  }
  if (has(f.protocol)) {
    const set = new Set(f.protocol.map((p) => nonEmpty(field('protocol'), p).toUpperCase()));
    parts.push((flow) => set.has(flow.protocol));
  }
  if (has(f.verdict)) {
    const set = new Set(f.verdict.map((v) => enumName(field('verdict'), v, ['VERDICT_UNKNOWN', 'FORWARDED', 'DROPPED', 'AUDIT'])));
    parts.push((flow) => set.has(flow.verdict));
  }
  if (has(f.dropReason)) {
    const set = new Set(f.dropReason.map((r) => nonEmpty(field('dropReason'), r).toUpperCase()));
    parts.push((flow) => set.has(flow.dropReason));
  }
  if (has(f.cluster)) {
    const set = new Set(f.cluster.map((c) => nonEmpty(field('cluster'), c)));
    parts.push((flow) => set.has(flow.cluster));
  }
  if (has(f.node)) {
    const m = anyOf(f.node.map((n) => globMatcher(field('node'), n)));
    parts.push((flow) => m(flow.node));
  }
  for (const name of ['encrypted', 'reply'] as const) for (const b of f[name] ?? []) if (typeof b !== 'boolean') throw new FlowFilterError(field(name), b, 'expected true or false');
  if (has(f.encrypted)) {
    const set = new Set(f.encrypted);
    parts.push((flow) => set.has(flow.encrypted));
  }
  if (has(f.reply)) {
    const set = new Set(f.reply);
    parts.push((flow) => set.has(flow.isReply));
  }
  if (has(f.tcpFlags)) {
    const masks = f.tcpFlags.map((t) => tcpFlagsMask(t as Partial<TcpFlags>));
    if (masks.some((m) => m === 0)) throw new FlowFilterError(field('tcpFlags'), f.tcpFlags, 'a TCP flags filter sets at least one flag');
    parts.push((flow) => {
      const have = flow.tcpFlags ? tcpFlagsMask(flow.tcpFlags) : 0;
      return masks.some((m) => (have & m) === m);
    });
  }
  if (has(f.trafficDirection)) {
    const set = new Set(f.trafficDirection.map((d) => enumName(field('trafficDirection'), d, ['TRAFFIC_DIRECTION_UNKNOWN', 'INGRESS', 'EGRESS'])));
    parts.push((flow) => set.has(flow.trafficDirection));
  }
  if (has(f.policy)) {
    const set = new Set(f.policy.map((p) => nonEmpty(field('policy'), p)));
    parts.push((flow) => set.has(flow.policy));
  }
  if (parts.length === 0) return acceptAll;
  if (parts.length === 1) return parts[0]!;
  return (flow) => parts.every((p) => p(flow));
}

function onSide(side: Side, match: (e: FlowEndpoint) => boolean): FlowPredicate {
  return (flow) => {
    const e = side(flow);
    return e !== null && match(e);
  };
}

function anyOf<T>(matchers: Array<(x: T) => boolean>): (x: T) => boolean {
  return matchers.length === 1 ? matchers[0]! : (x) => matchers.some((m) => m(x));
}

function nonEmpty(field: string, v: string): string {
  if (typeof v !== 'string' || v.trim() === '' || /[\s\x00-\x1f\x7f]/.test(v)) throw new FlowFilterError(field, v, 'expected a name without whitespace or control characters');
  return v;
}

function namespaced(field: string, v: string): string {
  const parts = nonEmpty(field, v).split('/');
  if (parts.length !== 2 || !parts[0] || !parts[1]) throw new FlowFilterError(field, v, 'use namespace/name');
  return v;
}

function enumName(field: string, v: unknown, names: readonly string[]): string {
  const name = typeof v === 'number' ? names[v] : typeof v === 'string' ? v.toUpperCase() : undefined;
  if (name === undefined || !names.includes(name) || name === names[0]) throw new FlowFilterError(field, v, `use one of ${names.slice(1).join(', ')}`);
  return name;
}

/** "ns/", "ns/pod", "pod", each name possibly ending in "*" (a prefix). */
function podMatcher(field: string, spec: string): (e: FlowEndpoint) => boolean {
  nonEmpty(field, spec);
  const slash = spec.indexOf('/');
  if (slash !== spec.lastIndexOf('/')) throw new FlowFilterError(field, spec, 'use namespace/pod, namespace/ or pod');
  const ns = slash < 0 ? undefined : spec.slice(0, slash);
  const pod = slash < 0 ? spec : spec.slice(slash + 1);
  if (ns === '') throw new FlowFilterError(field, spec, 'the namespace before "/" is empty');
  const podMatch = pod === '' ? (p: string) => p !== '' : globMatcher(field, pod);
  return (e) => (ns === undefined || e.namespace === ns) && podMatch(e.pod);
}

function globMatcher(field: string, pattern: string): (s: string) => boolean {
  nonEmpty(field, pattern);
  const star = pattern.indexOf('*');
  if (star < 0) return (s) => s === pattern;
  if (star !== pattern.length - 1) throw new FlowFilterError(field, pattern, '"*" is allowed only at the end');
  const prefix = pattern.slice(0, -1);
  return (s) => s.startsWith(prefix);
}

function ipMatcher(field: string, spec: string): (e: FlowEndpoint) => boolean {
  const text = spec.includes('/') ? spec : `${spec}/32`;
  const cidr = parseCidr(text);
  if (typeof cidr === 'string') throw new FlowFilterError(field, spec, 'expected an IPv4 address or CIDR');
  const mask = prefixMask(cidr.bits);
  return (e) => {
    const ip = parseIpv4(e.ip);
    return ip !== undefined && ((ip & mask) >>> 0) === cidr.addr;
  };
}

/**
 * A label selector: requirements separated by commas, all of which must hold: `key=value`,
 * `key!=value`, `key` (present), `!key` (absent). A key may name its source (`k8s:app`); without
 * one it matches the key in any source.
 */
export function labelSelector(field: string, spec: string): (e: FlowEndpoint) => boolean {
  nonEmpty(field, spec);
  const reqs = spec.split(',').map((raw) => {
    const r = raw.trim();
    const m = /^(!?)([A-Za-z0-9_.:/-]+?)(?:(!?=)(.*))?$/.exec(r);
    if (!m || (m[1] && m[3])) throw new FlowFilterError(field, spec, `cannot read requirement ${JSON.stringify(r)}: use key=value, key!=value, key or !key`);
    const [, not, key, op, value] = m as unknown as [string, string, string, string | undefined, string | undefined];
    if (op && !/^[A-Za-z0-9_.:/-]*$/.test(value ?? '')) throw new FlowFilterError(field, spec, `invalid label value ${JSON.stringify(value)}`);
    const keyMatch = key.includes(':') ? (l: string) => l.startsWith(`${key}=`) || l === key : (l: string) => {
      const colon = l.indexOf(':');
      const rest = colon >= 0 ? l.slice(colon + 1) : l;
      return rest === key || rest.startsWith(`${key}=`);
    };
    const valueOf = (l: string): string => {
      const eq = l.indexOf('=');
      return eq < 0 ? '' : l.slice(eq + 1);
    };
    if (!op) return not ? (labels: string[]) => !labels.some(keyMatch) : (labels: string[]) => labels.some(keyMatch);
    if (op === '=') return (labels: string[]) => labels.some((l) => keyMatch(l) && valueOf(l) === value);
    return (labels: string[]) => !labels.some((l) => keyMatch(l) && valueOf(l) === value);
  });
  return (e) => reqs.every((r) => r(e.labels));
}

export function tcpFlagsMask(t: Partial<TcpFlags>): number {
  let m = 0;
  TCP_FLAG_NAMES.forEach((name, i) => {
    if (t[name]) m |= 1 << i;
  });
  return m;
}

/** "SYN,ACK" -> the TCPFlags message; unknown names are a FlowFilterError. */
export function parseTcpFlags(field: string, text: string): TcpFlags {
  const flags = Object.fromEntries(TCP_FLAG_NAMES.map((n) => [n, false])) as unknown as TcpFlags;
  for (const raw of text.split(',')) {
    const name = raw.trim().toUpperCase();
    if (!(TCP_FLAG_NAMES as readonly string[]).includes(name)) throw new FlowFilterError(field, text, `unknown TCP flag ${JSON.stringify(raw)}: use ${TCP_FLAG_NAMES.join(', ')}`);
    flags[name as keyof TcpFlags] = true;
  }
  return flags;
}

/** The header's flags byte (FIN is bit 0 ... CWR bit 7) as the message. */
export function tcpFlagsFromByte(b: number): TcpFlags {
  return { FIN: (b & 1) !== 0, SYN: (b & 2) !== 0, RST: (b & 4) !== 0, PSH: (b & 8) !== 0, ACK: (b & 16) !== 0, URG: (b & 32) !== 0, ECE: (b & 64) !== 0, CWR: (b & 128) !== 0 };
}
