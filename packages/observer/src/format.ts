/**
 * Flows as text: JSON (the Flow with its time as RFC 3339, one object per line: what scripts and
 * the exporter read), protobuf's JSON mapping of the whole GetFlowsResponse (`jsonpb`, as Hubble
 * prints it), a compact line per flow, and table rows.
 */
import { formatTimestamp } from './time.js';
import { TCP_FLAG_NAMES, type Flow, type FlowEndpoint, type GetFlowsResponse } from './types.js';

/** The flow as JSON-ready data: every field, the time as an RFC 3339 string. */
export function flowJson(flow: Flow): Record<string, unknown> {
  return { ...flow, time: formatTimestamp(flow.time) };
}

/** protobuf's JSON mapping: lowerCamelCase names, enum names, Timestamps as RFC 3339, 64-bit integers as strings, defaults left out. */
export function responseJsonpb(r: GetFlowsResponse): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (r.flow) out.flow = pruneDefaults({ ...r.flow, time: formatTimestamp(r.flow.time) });
  if (r.lostEvents) out.lostEvents = pruneDefaults({ ...r.lostEvents, numEventsLost: String(r.lostEvents.numEventsLost) });
  if (r.nodeStatus) out.nodeStatus = pruneDefaults({ ...r.nodeStatus });
  if (r.cluster) out.cluster = r.cluster;
  if (r.node) out.node = r.node;
  if (r.time) out.time = formatTimestamp(r.time);
  return out;
}

function pruneDefaults(v: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (x === null || x === '' || x === 0 || x === false || (Array.isArray(x) && x.length === 0)) continue;
    if (typeof x === 'string' && /_UNKNOWN$/.test(x)) continue;
    if (typeof x === 'object' && !Array.isArray(x)) {
      const inner = pruneDefaults(x as Record<string, unknown>);
      if (Object.keys(inner).length > 0) out[k] = inner;
      continue;
    }
    out[k] = x;
  }
  return out;
}

export function endpointText(e: FlowEndpoint | null): string {
  if (!e) return '?';
  const who = e.pod ? `${e.namespace}/${e.pod}` : e.ip;
  const cluster = e.cluster ? `${e.cluster}/` : '';
  return `${e.pod ? cluster : ''}${who}${e.port ? `:${e.port}` : ''}`;
}

function identityText(e: FlowEndpoint | null): string {
  if (!e) return '';
  const reserved = e.labels.find((l) => l.startsWith('reserved:'));
  return reserved ? `(${reserved.slice('reserved:'.length)})` : `(ID:${e.identity})`;
}

export function tcpFlagsText(flow: Flow): string {
  const t = flow.tcpFlags;
  return t ? TCP_FLAG_NAMES.filter((n) => t[n]).join(', ') : '';
}

/** What happened, in a few words: the verdict, the reason, the policy, the flags. */
export function summaryText(flow: Flow): string {
  const parts: string[] = [flow.verdict];
  if (flow.dropReason) parts[0] += ` (${flow.dropReason})`;
  if (flow.protocol === 'TCP' && flow.tcpFlags) parts.push(`TCP Flags: ${tcpFlagsText(flow) || 'none'}`);
  else parts.push(flow.protocol);
  if (flow.destinationService?.name) parts.push(`service ${flow.destinationService.namespace}/${flow.destinationService.name}`);
  if (flow.encrypted) parts.push('encrypted');
  if (flow.related) parts.push('related');
  if (flow.policy) parts.push(`policy ${flow.policy}`);
  return parts.join('  ');
}

function shortTime(flow: Flow): string {
  const iso = formatTimestamp(flow.time);
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const month = d.toLocaleString('en-US', { month: 'short', timeZone: 'UTC' });
  return `${month} ${String(d.getUTCDate()).padStart(2, ' ')} ${iso.slice(11, 23)}`;
}

/** One line, as `hubble observe` prints by default. */
export function compactLine(flow: Flow): string {
  return `${shortTime(flow)} [${flow.cluster}/${flow.node}]: ${endpointText(flow.source)} ${identityText(flow.source)} ${flow.isReply ? '<-' : '->'} ${endpointText(flow.destination)} ${identityText(flow.destination)} ${flow.point} ${summaryText(flow)}`;
}

export const TABLE_HEADERS = ['TIME', 'NODE', 'SOURCE', 'DESTINATION', 'POINT', 'VERDICT', 'SUMMARY'];

export function tableRow(flow: Flow): string[] {
  const summary = summaryText(flow).split('  ').slice(1).join('  ');
  return [shortTime(flow), `${flow.cluster}/${flow.node}`, endpointText(flow.source), endpointText(flow.destination), flow.point, flow.dropReason ? `${flow.verdict} (${flow.dropReason})` : flow.verdict, summary];
}
