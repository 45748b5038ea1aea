/**
 * `weft observe`'s filter flags -> a GetFlowsRequest, as `hubble observe` builds one: directional
 * flags (`--from-pod`, `--to-port`) set one side; an either-side flag (`--pod`, `--port`) makes the
 * request a pair of filters, one with it as the source and one as the destination; every other flag
 * goes into both. `--not` puts the next filter flag into the deny list instead. Pure, so tested
 * without a server.
 */
import { FlowFilterError, parseSince, parseTcpFlags, timestampFromMs, type FlowFilterInput, type GetFlowsRequestInput } from '@weft/observer';
import { COMMANDS } from '../command-table.js';
import { UsageError } from '../output.js';
import { parseCommandArgs, type OptionValues } from '../parse-command-args.js';

type Side = 'source' | 'destination';
type SidedKey = 'Pod' | 'Namespace' | 'Label' | 'Identity' | 'Ip' | 'Port' | 'Cluster';

/** Flag -> (side or either, field). */
const SIDED: Record<string, { side: Side | 'either'; key: SidedKey; number?: boolean }> = {};
for (const [flag, key, number] of [
  ['pod', 'Pod'], ['namespace', 'Namespace'], ['label', 'Label'], ['identity', 'Identity', true], ['ip', 'Ip'], ['port', 'Port', true], ['cluster', 'Cluster'],
] as Array<[string, SidedKey, boolean?]>) {
  if (flag !== 'cluster') SIDED[flag] = { side: 'either', key, ...(number ? { number } : {}) };
  SIDED[`from-${flag}`] = { side: 'source', key, ...(number ? { number } : {}) };
  SIDED[`to-${flag}`] = { side: 'destination', key, ...(number ? { number } : {}) };
}

/** Flags that set a field of the flow itself (the same in both filters of a pair). */
const FLOW_FIELDS: Record<string, keyof FlowFilterInput> = {
  service: 'destinationService', 'to-service': 'destinationService', protocol: 'protocol', verdict: 'verdict', 'drop-reason': 'dropReason',
  node: 'node', 'node-cluster': 'cluster', policy: 'policy', 'tcp-flags': 'tcpFlags', 'traffic-direction': 'trafficDirection',
};
const BOOL_FLAGS: Record<string, [keyof FlowFilterInput, boolean]> = { encrypted: ['encrypted', true], unencrypted: ['encrypted', false], reply: ['reply', true], 'not-reply': ['reply', false] };

export const FILTER_FLAGS = [...Object.keys(SIDED), ...Object.keys(FLOW_FIELDS), ...Object.keys(BOOL_FLAGS)];

export interface ObserveOptions {
  request: GetFlowsRequestInput;
  /** Every option of the observe entry, parsed (the filters are in `request`). */
  values: OptionValues<(typeof COMMANDS)['observe']['options']>;
}

interface Builder {
  either: Partial<Record<SidedKey, Array<string | number>>>;
  filter: Record<string, unknown[]>;
  used: boolean;
}

const newBuilder = (): Builder => ({ either: {}, filter: {}, used: false });

/**
 * `weft observe`'s arguments, parsed with its command-table entry; the filters are then read from
 * the parse's tokens, in order, since `--not` negates the filter that follows it.
 */
export function parseObserveFlags(argv: readonly string[], now = Date.now()): ObserveOptions {
  const { values, tokens } = parseCommandArgs(COMMANDS.observe, argv);
  const allow = newBuilder();
  const deny = newBuilder();
  const request: GetFlowsRequestInput = {};
  let negate = false;
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    const flag = t.name;
    if (flag === 'not') {
      if (negate) throw new UsageError('--not --not: a filter is negated once');
      negate = true;
      continue;
    }
    if (!(flag in SIDED || flag in FLOW_FIELDS || flag in BOOL_FLAGS)) {
      if (negate) throw new UsageError(`--not must come before a filter flag, not ${t.rawName} (filters: --${FILTER_FLAGS.join(', --')})`);
      continue;
    }
    const b = negate ? deny : allow;
    negate = false;
    b.used = true;
    if (flag in BOOL_FLAGS) {
      const [field, value] = BOOL_FLAGS[flag]!;
      (b.filter[field] ??= []).push(value);
      continue;
    }
    const value = t.value!;
    const sided = SIDED[flag];
    if (sided) {
      const v = sided.number ? toNumber(flag, value) : value;
      if (sided.side === 'either') (b.either[sided.key] ??= []).push(v);
      else (b.filter[`${sided.side}${sided.key}`] ??= []).push(v);
      continue;
    }
    const field = FLOW_FIELDS[flag]!;
    const v = field === 'tcpFlags' ? parseTcpFlags(`--${flag}`, value) : field === 'verdict' || field === 'trafficDirection' || field === 'dropReason' ? value.toUpperCase() : value;
    (b.filter[field] ??= []).push(v);
  }
  if (negate) throw new UsageError('--not must be followed by a filter flag');
  if (allow.used) request.allow = filters(allow);
  if (deny.used) request.deny = filters(deny);
  for (const key of ['since', 'until'] as const) {
    const text = values[key];
    if (text === undefined) continue;
    const ms = parseSince(text, now);
    if (ms === undefined) throw new UsageError(`Invalid --${key} ${JSON.stringify(text)}: use a duration ago (30s, 5m, 2h, 1d) or an RFC 3339 time`);
    request[key] = timestampFromMs(ms);
  }
  return { request, values };
}

function toNumber(flag: string, value: string): number {
  if (!/^\d{1,10}$/.test(value)) throw new FlowFilterError(`--${flag}`, value, 'expected a number');
  return Number(value);
}

function filters(b: Builder): FlowFilterInput[] {
  const sides = Object.entries(b.either);
  if (sides.length === 0) return [b.filter as FlowFilterInput];
  return (['source', 'destination'] as const).map((side) => {
    const f: Record<string, unknown[]> = Object.fromEntries(Object.entries(b.filter).map(([k, v]) => [k, [...v]]));
    for (const [key, values] of sides) (f[`${side}${key}`] ??= []).push(...values!);
    return f as FlowFilterInput;
  });
}
