/**
 * A strict reader of the Prometheus text exposition format 0.0.4, for tests that scrape a real
 * endpoint: it accepts what the format allows and rejects, with the line number, whatever a
 * Prometheus server would refuse or silently misread:
 *   - names and label names outside the format's grammar, label values with bad escapes, values
 *     that are not Go floats (NaN, +Inf, -Inf allowed), duplicate label names;
 *   - more than one HELP or TYPE for a name, a TYPE after the family's first sample, samples of a
 *     family not in one group, the same series twice;
 *   - a counter that is negative or NaN, a histogram without its +Inf bucket, buckets not
 *     cumulative or not in increasing `le`, a +Inf bucket other than `_count`, a summary without
 *     `_sum` and `_count`.
 * Written for Weft's tests rather than taken from npm: the parsers there are lenient (they read
 * what a scrape should have failed on) and this one is short.
 */
import { ExpositionError } from './errors.js';

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  /** The sample's own name: the family's, or with _bucket, _sum, _count. */
  name: string;
  labels: Record<string, string>;
  value: number;
  timestampMs?: number;
}

export interface Family {
  name: string;
  help?: string;
  type: MetricType;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const TYPES = new Set<MetricType>(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
/** Go's strconv.ParseFloat, which Prometheus reads values with: decimal, and inf, infinity, nan in any case. */
const FLOAT = /^[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)$/;
const INF = /^[+-]?inf(?:inity)?$/i;

/** The families of an exposition, by name, in the order they appear. */
export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const helpSeen = new Set<string>();
  const typeSeen = new Set<string>();
  /** Families whose samples have been seen; the one being read last. */
  const sampled = new Set<string>();
  let current: string | undefined;
  const seriesSeen = new Set<string>();
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const family = (name: string): Family => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { name, type: 'untyped', samples: [] }));
    return f;
  };
  lines.forEach((raw, i) => {
    const n = i + 1;
    const fail = (problem: string): never => {
      throw new ExpositionError(n, `${problem}: ${JSON.stringify(raw.slice(0, 200))}`);
    };
    if (raw.trim() === '') return;
    if (raw.startsWith('#')) {
      const m = /^#[ \t]+(HELP|TYPE)[ \t]+(\S+)(?:[ \t]+(.*))?$/.exec(raw);
      if (!m) return; // a comment
      const [, kind, name, rest = ''] = m as unknown as [string, string, string, string | undefined];
      if (!NAME.test(name)) fail(`metric name ${JSON.stringify(name)} is not valid`);
      if (kind === 'HELP') {
        if (helpSeen.has(name)) fail(`a second HELP for ${name}`);
        helpSeen.add(name);
        family(name).help = unescapeHelp(rest, fail);
      } else {
        if (typeSeen.has(name)) fail(`a second TYPE for ${name}`);
        if (sampled.has(name)) fail(`TYPE of ${name} after its samples`);
        if (!TYPES.has(rest.trim() as MetricType)) fail(`type ${JSON.stringify(rest)} is not counter, gauge, histogram, summary or untyped`);
        typeSeen.add(name);
        family(name).type = rest.trim() as MetricType;
      }
      return;
    }
    const sample = parseSample(raw, fail);
    const owner = familyOf(sample.name, families);
    if (owner !== current) {
      if (sampled.has(owner)) fail(`samples of ${owner} are not in one group`);
      sampled.add(owner);
      current = owner;
    }
    const f = family(owner);
    const suffix = sample.name.slice(owner.length);
    if (f.type === 'histogram' && !['_bucket', '_sum', '_count'].includes(suffix)) fail(`histogram ${owner} has a sample ${sample.name}`);
    if (f.type === 'summary' && !['', '_sum', '_count'].includes(suffix)) fail(`summary ${owner} has a sample ${sample.name}`);
    if ((f.type === 'counter' || f.type === 'gauge') && suffix !== '') fail(`${f.type} ${owner} has a sample ${sample.name}`);
    if (f.type === 'histogram' && suffix === '_bucket' && sample.labels.le === undefined) fail(`bucket of ${owner} without le`);
    if (f.type === 'summary' && suffix === '' && sample.labels.quantile === undefined) fail(`summary ${owner} sample without quantile`);
    if (f.type === 'counter' && !(sample.value >= 0)) fail(`counter ${owner} is ${sample.value}`);
    const key = `${sample.name}${JSON.stringify(Object.entries(sample.labels).sort())}`;
    if (seriesSeen.has(key)) fail(`series ${sample.name} ${JSON.stringify(sample.labels)} appears twice`);
    seriesSeen.add(key);
    f.samples.push(sample);
  });
  for (const f of families.values()) {
    if (f.type === 'histogram') checkHistogram(f);
    if (f.type === 'summary') checkSummary(f);
  }
  return families;
}

/** The family a sample belongs to: a declared histogram or summary for its suffixed names. */
function familyOf(name: string, families: Map<string, Family>): string {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue;
    const base = name.slice(0, -suffix.length);
    const t = families.get(base)?.type;
    if (t === 'histogram' || (t === 'summary' && suffix !== '_bucket')) return base;
  }
  return name;
}

function parseSample(raw: string, fail: (problem: string) => never): Sample {
  let i = 0;
  const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(raw);
  if (!nameMatch) fail('a sample must start with a metric name');
  const name = nameMatch![0];
  i = name.length;
  const labels: Record<string, string> = {};
  if (raw[i] === '{') {
    i++;
    for (;;) {
      while (raw[i] === ' ' || raw[i] === '\t') i++;
      if (raw[i] === '}') {
        i++;
        break;
      }
      const lm = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(raw.slice(i));
      if (!lm) fail(`a label name is expected at column ${i + 1}`);
      const label = lm![0];
      if (label.startsWith('__')) fail(`label name ${label} is reserved`);
      if (label in labels) fail(`label ${label} appears twice`);
      i += label.length;
      while (raw[i] === ' ' || raw[i] === '\t') i++;
      if (raw[i] !== '=') fail(`'=' is expected after label ${label}`);
      i++;
      while (raw[i] === ' ' || raw[i] === '\t') i++;
      if (raw[i] !== '"') fail(`label ${label}'s value must be quoted`);
      i++;
      let value = '';
      for (;;) {
        const c = raw[i];
        if (c === undefined) fail(`label ${label}'s value is not closed`);
        if (c === '"') break;
        if (c === '\\') {
          const e = raw[i + 1];
          if (e === '\\') value += '\\';
          else if (e === '"') value += '"';
          else if (e === 'n') value += '\n';
          else fail(`label ${label}'s value has an invalid escape \\${e ?? ''}`);
          i += 2;
          continue;
        }
        value += c;
        i++;
      }
      i++;
      labels[label] = value;
      while (raw[i] === ' ' || raw[i] === '\t') i++;
      if (raw[i] === ',') {
        i++;
        continue;
      }
      if (raw[i] !== '}') fail(`',' or '}' is expected after label ${label}`);
    }
  }
  const rest = raw.slice(i);
  const m = /^[ \t]+(\S+)(?:[ \t]+(\S+))?[ \t]*$/.exec(rest);
  if (!m) fail('a value is expected after the name and labels');
  const value = parseFloatStrict(m![1]!, fail);
  const sample: Sample = { name, labels, value };
  if (m![2] !== undefined) {
    if (!/^-?\d+$/.test(m![2])) fail(`timestamp ${m![2]} is not an integer`);
    sample.timestampMs = Number(m![2]);
  }
  return sample;
}

function parseFloatStrict(text: string, fail: (problem: string) => never): number {
  // (prom-client writes NaN as "Nan", which Go reads.)
  if (/^nan$/i.test(text)) return NaN;
  if (INF.test(text)) return text.startsWith('-') ? -Infinity : Infinity;
  if (!FLOAT.test(text)) fail(`value ${JSON.stringify(text)} is not a float`);
  return Number(text);
}

function unescapeHelp(text: string, fail: (problem: string) => never): string {
  return text.replace(/\\(.?)/g, (_, e: string) => (e === '\\' ? '\\' : e === 'n' ? '\n' : fail(`HELP has an invalid escape \\${e}`)));
}

function seriesKey(labels: Record<string, string>, without: string): string {
  return JSON.stringify(Object.entries(labels).filter(([k]) => k !== without).sort());
}

function checkHistogram(f: Family): void {
  const series = new Map<string, { buckets: Array<[number, number]>; sum?: number; count?: number }>();
  const of = (s: Sample) => {
    const k = seriesKey(s.labels, 'le');
    let v = series.get(k);
    if (!v) series.set(k, (v = { buckets: [] }));
    return v;
  };
  for (const s of f.samples) {
    const v = of(s);
    if (s.name.endsWith('_bucket')) v.buckets.push([parseFloatStrict(s.labels.le!, (p) => { throw new ExpositionError(0, `${f.name}: le ${p}`); }), s.value]);
    else if (s.name.endsWith('_sum')) v.sum = s.value;
    else v.count = s.value;
  }
  for (const [k, v] of series) {
    const where = `histogram ${f.name} ${k}`;
    if (v.count === undefined || v.sum === undefined) throw new ExpositionError(0, `${where} lacks _sum or _count`);
    if (v.buckets.length === 0 || v.buckets[v.buckets.length - 1]![0] !== Infinity) throw new ExpositionError(0, `${where} lacks its +Inf bucket (last)`);
    for (let i = 1; i < v.buckets.length; i++) {
      if (!(v.buckets[i]![0] > v.buckets[i - 1]![0])) throw new ExpositionError(0, `${where}: le ${v.buckets[i]![0]} does not increase`);
      if (v.buckets[i]![1] < v.buckets[i - 1]![1]) throw new ExpositionError(0, `${where}: bucket le=${v.buckets[i]![0]} holds fewer than the one before`);
    }
    if (v.buckets[v.buckets.length - 1]![1] !== v.count) throw new ExpositionError(0, `${where}: +Inf bucket ${v.buckets[v.buckets.length - 1]![1]} is not _count ${v.count}`);
  }
}

function checkSummary(f: Family): void {
  const keys = new Set(f.samples.map((s) => seriesKey(s.labels, 'quantile')));
  for (const k of keys) {
    const names = new Set(f.samples.filter((s) => seriesKey(s.labels, 'quantile') === k).map((s) => s.name));
    if (!names.has(`${f.name}_sum`) || !names.has(`${f.name}_count`)) throw new ExpositionError(0, `summary ${f.name} ${k} lacks _sum or _count`);
  }
}

/**
 * The value of the one sample of `families` named `name` whose labels include `labels`; undefined
 * when there is none. More than one match is an error: the test meant a series, not a family.
 */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  const owner = familyOf(name, families);
  const matches = (families.get(owner)?.samples ?? []).filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (matches.length > 1) throw new RangeError(`${matches.length} series of ${name} match ${JSON.stringify(labels)}`);
  return matches[0]?.value;
}
