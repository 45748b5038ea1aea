/**
 * Labels, the input of identity. A label is `source:key=value`; a LabelSet is
 * an immutable, validated, sorted set of them whose canonical string
 * (`a;b;c`, sorted) is what etcd stores: equal sets have equal strings on every
 * node, which is what makes "same labels -> same id" hold cluster-wide.
 *
 * Only identity-relevant labels count: a LabelFilter drops the ones that differ
 * between replicas of one workload (pod-template-hash and friends), so the
 * replicas share one identity. The cluster label is always kept.
 */
import { InvalidLabelError } from './errors.js';
import { ReservedIdentity, type ReservedName } from './numeric.js';

export interface Label {
  readonly source: string;
  readonly key: string;
  readonly value: string;
}

/** The label every identity carries: the name of its cluster. */
export const CLUSTER_LABEL = 'weft.io/cluster';
/** The namespace of a pod, as a label. */
export const NAMESPACE_LABEL = 'io.kubernetes.pod.namespace';
/** Prefix of a namespace's own labels carried into its pods' identities. */
export const NAMESPACE_LABELS_PREFIX = 'weft.io.namespace.labels.';
export const DEFAULT_SOURCE = 'k8s';
export const RESERVED_SOURCE = 'reserved';

const SOURCE_RE = /^[a-z0-9][a-z0-9-]{0,31}$/;
const NAME_RE = /^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const MAX_LABELS = 256;

function fail(where: string, text: string, why: string): never {
  throw new InvalidLabelError(`Invalid label ${JSON.stringify(text)}${where}: ${why}`);
}

function checkKey(key: string, where: string, text: string): void {
  if (key.length === 0) fail(where, text, 'the key is empty');
  const slash = key.indexOf('/');
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (slash >= 0) {
    const prefix = key.slice(0, slash);
    if (prefix.length === 0 || prefix.length > 253 || !DNS_SUBDOMAIN_RE.test(prefix)) {
      fail(where, text, `key prefix ${JSON.stringify(prefix)} must be a DNS subdomain (lowercase, at most 253 characters)`);
    }
  }
  if (!NAME_RE.test(name)) {
    fail(where, text, `key name ${JSON.stringify(name)} must be 1-63 characters of [A-Za-z0-9_.-], beginning and ending alphanumeric`);
  }
}

function checkValue(value: string, where: string, text: string): void {
  if (value.length > 0 && !NAME_RE.test(value)) {
    fail(where, text, `value ${JSON.stringify(value)} must be at most 63 characters of [A-Za-z0-9_.-], beginning and ending alphanumeric`);
  }
}

/** Validates one label; throws InvalidLabelError naming what is wrong. */
export function makeLabel(source: string, key: string, value: string, where = ''): Label {
  const text = `${source}:${key}=${value}`;
  if (!SOURCE_RE.test(source)) fail(where, text, `source ${JSON.stringify(source)} must be 1-32 characters of [a-z0-9-]`);
  if (source === RESERVED_SOURCE) {
    if (!(key in ReservedIdentity)) fail(where, text, `${JSON.stringify(key)} is not a reserved identity (${Object.keys(ReservedIdentity).join(', ')})`);
    if (value !== '') fail(where, text, 'reserved labels take no value');
  } else {
    checkKey(key, where, text);
    checkValue(value, where, text);
  }
  return Object.freeze({ source, key, value });
}

/** Parses `[source:]key[=value]`. */
export function parseLabel(text: string, defaultSource = DEFAULT_SOURCE, where = ''): Label {
  if (typeof text !== 'string') throw new InvalidLabelError(`Invalid label ${JSON.stringify(text)}${where}: not a string`);
  let source = defaultSource;
  let rest = text;
  const colon = text.indexOf(':');
  if (colon >= 0) {
    source = text.slice(0, colon);
    rest = text.slice(colon + 1);
  }
  const eq = rest.indexOf('=');
  const key = eq >= 0 ? rest.slice(0, eq) : rest;
  const value = eq >= 0 ? rest.slice(eq + 1) : '';
  return makeLabel(source, key, value, where);
}

export function formatLabel(label: Label): string {
  return label.value === '' && label.source === RESERVED_SOURCE ? `${label.source}:${label.key}` : `${label.source}:${label.key}=${label.value}`;
}

export class LabelSet {
  readonly labels: readonly Label[];
  /** Canonical form: sorted `source:key=value` joined by ';'. */
  readonly key: string;

  private constructor(labels: Label[]) {
    labels.sort((a, b) => (a.source + ':' + a.key < b.source + ':' + b.key ? -1 : 1));
    this.labels = Object.freeze(labels);
    this.key = labels.map(formatLabel).join(';');
  }

  /** From validated labels; rejects one key with two values. */
  static of(labels: Iterable<Label>): LabelSet {
    const byKey = new Map<string, Label>();
    for (const l of labels) {
      const id = `${l.source}:${l.key}`;
      const prev = byKey.get(id);
      if (prev && prev.value !== l.value) {
        throw new InvalidLabelError(`Invalid label set: key ${JSON.stringify(id)} has two values, ${JSON.stringify(prev.value)} and ${JSON.stringify(l.value)}`);
      }
      byKey.set(id, l);
    }
    if (byKey.size === 0) throw new InvalidLabelError('Invalid label set: it is empty');
    if (byKey.size > MAX_LABELS) throw new InvalidLabelError(`Invalid label set: ${byKey.size} labels, at most ${MAX_LABELS} allowed`);
    return new LabelSet([...byKey.values()]);
  }

  /** From a Kubernetes-style map, all with one source. */
  static fromMap(map: Record<string, string>, source = DEFAULT_SOURCE): LabelSet {
    return LabelSet.of(Object.entries(map).map(([k, v]) => makeLabel(source, k, v, ` (key ${JSON.stringify(k)})`)));
  }

  /** From label strings, e.g. ["k8s:app=web", "k8s:tier=front"]. */
  static parse(texts: readonly string[], defaultSource = DEFAULT_SOURCE): LabelSet {
    return LabelSet.of(texts.map((t, i) => parseLabel(t, defaultSource, ` (label ${i + 1} of ${texts.length})`)));
  }

  /** Parses a canonical string as stored in etcd; strict, since etcd data is not trusted. */
  static fromCanonical(text: string): LabelSet {
    if (text.length === 0) throw new InvalidLabelError('Invalid label set: it is empty');
    const set = LabelSet.parse(text.split(';'), DEFAULT_SOURCE);
    if (set.key !== text) throw new InvalidLabelError(`Invalid label set ${JSON.stringify(text.slice(0, 200))}: not in canonical form`);
    return set;
  }

  static reserved(name: ReservedName): LabelSet {
    return LabelSet.of([makeLabel(RESERVED_SOURCE, name, '')]);
  }

  get(key: string, source = DEFAULT_SOURCE): string | undefined {
    return this.labels.find((l) => l.key === key && l.source === source)?.value;
  }

  has(key: string, source = DEFAULT_SOURCE): boolean {
    return this.get(key, source) !== undefined;
  }

  /** The reserved identity this set names, if it is exactly one reserved label. */
  get reservedName(): ReservedName | undefined {
    const only = this.labels.length === 1 ? this.labels[0] : undefined;
    return only && only.source === RESERVED_SOURCE ? (only.key as ReservedName) : undefined;
  }

  /** A new set with `label` added or replaced. */
  with(label: Label): LabelSet {
    return LabelSet.of([...this.labels.filter((l) => !(l.key === label.key && l.source === label.source)), label]);
  }

  toStrings(): string[] {
    return this.labels.map(formatLabel);
  }

  toString(): string {
    return this.key;
  }
}

export interface LabelFilterOptions {
  /** Keys matching any of these are dropped. Default: DEFAULT_EXCLUDED_KEYS. */
  exclude?: readonly RegExp[];
  /** When given, only keys matching one of these are kept (the cluster and namespace labels always are). */
  include?: readonly RegExp[];
}

/** Keys that differ between replicas of one workload and so must not split its identity. */
export const DEFAULT_EXCLUDED_KEYS: readonly RegExp[] = [
  /^pod-template-hash$/,
  /^pod-template-generation$/,
  /^controller-revision-hash$/,
  /^controller-uid$/,
  /^job-name$/,
  /^batch\.kubernetes\.io\/(controller-uid|job-name|job-completion-index)$/,
  /^statefulset\.kubernetes\.io\/pod-name$/,
  /^apps\.kubernetes\.io\/pod-index$/,
  /^annotation\./,
];

export class LabelFilter {
  private readonly exclude: readonly RegExp[];
  private readonly include: readonly RegExp[] | undefined;

  constructor(options: LabelFilterOptions = {}) {
    this.exclude = options.exclude ?? DEFAULT_EXCLUDED_KEYS;
    this.include = options.include;
  }

  /** Whether a label takes part in identity. */
  relevant(label: Label): boolean {
    if (label.source === RESERVED_SOURCE) return true;
    if (label.key === CLUSTER_LABEL || label.key === NAMESPACE_LABEL) return true;
    if (this.include && !this.include.some((re) => re.test(label.key))) return false;
    return !this.exclude.some((re) => re.test(label.key));
  }

  apply(set: LabelSet): LabelSet {
    const kept = set.labels.filter((l) => this.relevant(l));
    return kept.length === set.labels.length ? set : LabelSet.of(kept);
  }
}

/**
 * The identity labels of a workload: its own labels, its namespace (and the
 * namespace's labels, so policies can select by them), and its cluster.
 */
export function workloadLabels(input: {
  cluster: string;
  namespace: string;
  labels: Record<string, string>;
  namespaceLabels?: Record<string, string>;
  filter?: LabelFilter;
}): LabelSet {
  const all: Label[] = Object.entries(input.labels).map(([k, v]) => makeLabel(DEFAULT_SOURCE, k, v, ` (pod label ${JSON.stringify(k)})`));
  for (const [k, v] of Object.entries(input.namespaceLabels ?? {})) {
    all.push(makeLabel(DEFAULT_SOURCE, NAMESPACE_LABELS_PREFIX + k, v, ` (namespace label ${JSON.stringify(k)})`));
  }
  all.push(makeLabel(DEFAULT_SOURCE, NAMESPACE_LABEL, input.namespace, ' (namespace)'));
  all.push(makeLabel(DEFAULT_SOURCE, CLUSTER_LABEL, input.cluster, ' (cluster name)'));
  return (input.filter ?? new LabelFilter()).apply(LabelSet.of(all));
}
