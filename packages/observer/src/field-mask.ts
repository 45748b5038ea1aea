/**
 * A flow as one line of JSON with only the fields a mask selects (the exporter's output). The mask
 * ("time", "verdict", "source.pod", "destination"; empty: every field) is compiled once into a
 * writer per field; the per-flow path only concatenates what those writers return, never looks at
 * the mask again, and never builds an intermediate object. The output is flowJson's shape (the
 * Flow's JSON names, its time as RFC 3339, a missing message as null), fields in the Flow's order
 * whatever the order of the mask.
 *
 * The tables below name every field of the generated types and are checked against them by the
 * compiler (each is typed as exactly the keys of its message), so a field added to the proto fails
 * the build until it has a kind here.
 */
import { FlowFieldMaskError } from './errors.js';
import type { Flow, FlowEndpoint, FlowService, TcpFlags } from './types.js';

type Leaf = 'string' | 'number' | 'bool' | 'strings' | 'time';
/** A field: its kind (a leaf, or a message's schema) and a getter (a named property read, which V8 caches, where o[name] is a dictionary lookup). */
type Field<T> = readonly [Leaf | MessageSchema, (o: T) => unknown];
interface MessageSchema {
  readonly name: string;
  readonly fields: Readonly<Record<string, Field<never>>>;
}
type FieldsOf<T> = { readonly [K in keyof Required<T>]: Field<T> };

const ENDPOINT_FIELDS: FieldsOf<FlowEndpoint> = {
  ip: ['string', (e) => e.ip],
  port: ['number', (e) => e.port],
  identity: ['number', (e) => e.identity],
  namespace: ['string', (e) => e.namespace],
  pod: ['string', (e) => e.pod],
  labels: ['strings', (e) => e.labels],
  cluster: ['string', (e) => e.cluster],
};
const SERVICE_FIELDS: FieldsOf<FlowService> = {
  namespace: ['string', (s) => s.namespace],
  name: ['string', (s) => s.name],
  ip: ['string', (s) => s.ip],
  port: ['number', (s) => s.port],
};
const TCP_FLAGS_FIELDS: FieldsOf<TcpFlags> = {
  FIN: ['bool', (t) => t.FIN],
  SYN: ['bool', (t) => t.SYN],
  RST: ['bool', (t) => t.RST],
  PSH: ['bool', (t) => t.PSH],
  ACK: ['bool', (t) => t.ACK],
  URG: ['bool', (t) => t.URG],
  ECE: ['bool', (t) => t.ECE],
  CWR: ['bool', (t) => t.CWR],
};
const ENDPOINT: MessageSchema = { name: 'Endpoint', fields: ENDPOINT_FIELDS };
const FLOW_FIELDS: FieldsOf<Flow> = {
  time: ['time', (f) => f.time],
  cluster: ['string', (f) => f.cluster],
  node: ['string', (f) => f.node],
  verdict: ['string', (f) => f.verdict],
  dropReason: ['string', (f) => f.dropReason],
  dropReasonCode: ['number', (f) => f.dropReasonCode],
  point: ['string', (f) => f.point],
  trafficDirection: ['string', (f) => f.trafficDirection],
  protocol: ['string', (f) => f.protocol],
  source: [ENDPOINT, (f) => f.source],
  destination: [ENDPOINT, (f) => f.destination],
  destinationService: [{ name: 'Service', fields: SERVICE_FIELDS }, (f) => f.destinationService],
  tcpFlags: [{ name: 'TCPFlags', fields: TCP_FLAGS_FIELDS }, (f) => f.tcpFlags],
  isReply: ['bool', (f) => f.isReply],
  newConnection: ['bool', (f) => f.newConnection],
  encrypted: ['bool', (f) => f.encrypted],
  tunneled: ['bool', (f) => f.tunneled],
  related: ['bool', (f) => f.related],
  policy: ['string', (f) => f.policy],
  length: ['number', (f) => f.length],
};
const FLOW: MessageSchema = { name: 'Flow', fields: FLOW_FIELDS };

/** Every path a mask may name: the Flow's fields and, for its messages, theirs ("source.pod"). */
export const FLOW_FIELD_PATHS: readonly string[] = Object.entries(FLOW.fields).flatMap(([name, [kind]]) => [name, ...(typeof kind === 'string' ? [] : Object.keys(kind.fields).map((f) => `${name}.${f}`))]);

/** A flow as one JSON object (no newline). */
export type FlowSerializer = (flow: Flow) => string;

/** A selection: `true` takes the whole field, a map takes some of a message's fields. */
type Selection = Map<string, true | Selection>;

/**
 * Compiles `mask` into a serializer; a path that names no field is a FlowFieldMaskError naming the
 * entry (`${where}[i]`). An empty mask selects every field.
 */
export function compileFieldMask(mask: readonly string[] = [], where = 'fieldMask'): FlowSerializer {
  if (!Array.isArray(mask)) throw new FlowFieldMaskError(where, mask, 'must be a list of field paths');
  const selection: Selection = new Map();
  mask.forEach((path, i) => select(selection, path, `${where}[${i}]`));
  const write = messageWriter(FLOW, mask.length === 0 ? undefined : selection);
  return write as FlowSerializer;
}

function select(selection: Selection, path: unknown, where: string): void {
  if (typeof path !== 'string' || !/^[A-Za-z]+(\.[A-Za-z]+)?$/.test(path)) throw new FlowFieldMaskError(where, path, 'expected a field name or message.field, e.g. "verdict" or "source.pod"');
  const [top, sub] = path.split('.') as [string, string | undefined];
  const kind = Object.hasOwn(FLOW.fields, top) ? FLOW.fields[top]![0] : undefined;
  if (kind === undefined) throw new FlowFieldMaskError(where, path, `Flow has no field ${JSON.stringify(top)} (${Object.keys(FLOW.fields).join(', ')})`);
  if (sub === undefined) {
    selection.set(top, true);
    return;
  }
  if (typeof kind === 'string') throw new FlowFieldMaskError(where, path, `${top} is a ${kind === 'time' ? 'timestamp (RFC 3339 text)' : kind}, it has no fields`);
  if (!Object.hasOwn(kind.fields, sub)) throw new FlowFieldMaskError(where, path, `${kind.name} has no field ${JSON.stringify(sub)} (${Object.keys(kind.fields).join(', ')})`);
  const current = selection.get(top);
  if (current === true) return;
  const inner: Selection = current ?? new Map();
  inner.set(sub, true);
  selection.set(top, inner);
}

type ValueWriter = (v: unknown) => string;

/** A writer for one message: its selected fields (all without a selection) in the schema's order. */
function messageWriter(schema: MessageSchema, selection: Selection | undefined): ValueWriter {
  const prefixes: string[] = [];
  const getters: Array<(o: unknown) => unknown> = [];
  const writers: ValueWriter[] = [];
  for (const [name, [kind, get]] of Object.entries(schema.fields)) {
    const sel = selection === undefined ? true : selection.get(name);
    if (sel === undefined) continue;
    prefixes.push(`${prefixes.length === 0 ? '' : ','}${JSON.stringify(name)}:`);
    getters.push(get as (o: unknown) => unknown);
    writers.push(typeof kind === 'string' ? LEAF_WRITERS[kind] : messageWriter(kind, sel === true ? undefined : sel));
  }
  const n = prefixes.length;
  return (v) => {
    if (v === null || typeof v !== 'object') return 'null';
    let s = '{';
    for (let i = 0; i < n; i++) s += prefixes[i]! + writers[i]!(getters[i]!(v));
    return s + '}';
  };
}

/** A character JSON.stringify would escape, or one outside printable ASCII (left to it). */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\u007f-\uffff]/;

/** JSON.stringify(s), a third of its cost for the usual names and addresses (nothing to escape). */
function jsonString(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

/**
 * A label list's JSON, per list: enrich (packages/agent) gives every flow of an identity the same
 * list, and a flow and its lists are never changed once made (the ring, the streams and the
 * exporter share them), so each list is written once, not once per flow.
 */
const listJson = new WeakMap<readonly unknown[], string>();

function jsonStrings(v: readonly unknown[]): string {
  let text = listJson.get(v);
  if (text === undefined) {
    text = JSON.stringify(v);
    listJson.set(v, text);
  }
  return text;
}

// Each writes what JSON.stringify would for a value of its type, and null for anything else, so a
// line is valid JSON even if a flow arrives incomplete.
const LEAF_WRITERS: Record<Leaf, ValueWriter> = {
  string: (v) => (typeof v === 'string' ? jsonString(v) : 'null'),
  number: (v) => (typeof v === 'number' && Number.isFinite(v) ? String(v) : 'null'),
  bool: (v) => (v === true ? 'true' : v === false ? 'false' : 'null'),
  strings: (v) => (Array.isArray(v) ? jsonStrings(v) : 'null'),
  time: (v) => `"${rfc3339(v as Flow['time'])}"`,
};

/**
 * formatTimestamp's text (RFC 3339, nanoseconds without trailing zeros), with the date and time
 * of the last second kept: flows come in time order, so most share their second with the last one.
 */
const MAX_DATE_SECONDS = 8.64e12;
let cachedSeconds = NaN;
let cachedPrefix = '';
function rfc3339(t: Flow['time'] | undefined): string {
  if (!t) return '';
  const seconds = Number(t.seconds);
  if (seconds !== cachedSeconds) {
    if (!Number.isFinite(seconds) || Math.abs(seconds) > MAX_DATE_SECONDS) return '';
    cachedPrefix = new Date(seconds * 1000).toISOString().slice(0, 19);
    cachedSeconds = seconds;
  }
  let nanos = t.nanos;
  if (!nanos) return `${cachedPrefix}Z`;
  let digits = 9;
  while (nanos % 10 === 0) {
    nanos /= 10;
    digits--;
  }
  return `${cachedPrefix}.${String(nanos).padStart(digits, '0')}Z`;
}
