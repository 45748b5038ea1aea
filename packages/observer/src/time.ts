/** Flow times: protobuf Timestamps, compared and converted without losing nanoseconds. */
import type { Timestamp } from './types.js';

export function timestampFromMs(ms: number): Timestamp {
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: Math.round((ms - seconds * 1000) * 1e6) };
}

export function timestampFromNs(ns: bigint): Timestamp {
  return { seconds: Number(ns / 1_000_000_000n), nanos: Number(ns % 1_000_000_000n) };
}

export function timestampMs(t: Timestamp | null | undefined): number {
  return t ? Number(t.seconds) * 1000 + t.nanos / 1e6 : 0;
}

/** Negative, zero or positive as a is before, at or after b; a missing time sorts first. */
export function compareTimestamps(a: Timestamp | null | undefined, b: Timestamp | null | undefined): number {
  const as = a ? Number(a.seconds) : -Infinity;
  const bs = b ? Number(b.seconds) : -Infinity;
  if (as !== bs) return as < bs ? -1 : 1;
  return (a?.nanos ?? 0) - (b?.nanos ?? 0);
}

/** RFC 3339 with nanoseconds, as protobuf's JSON mapping writes a Timestamp. */
export function formatTimestamp(t: Timestamp | null | undefined): string {
  if (!t) return '';
  const iso = new Date(Number(t.seconds) * 1000).toISOString().slice(0, 19);
  const frac = t.nanos ? `.${String(t.nanos).padStart(9, '0').replace(/0+$/, '')}` : '';
  return `${iso}${frac}Z`;
}

/** "30s", "5m", "2h", "1d" ago, or an RFC 3339 time -> epoch ms; undefined when it is neither. */
export function parseSince(text: string, now = Date.now()): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text);
  if (m) return now - Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  if (!/^\d{4}-\d\d-\d\dT/.test(text)) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
}
