/**
 * Weft's conventions for Prometheus metrics, in one place so every component follows them:
 *   - names start with `weft_` (METRIC_PREFIX), follow Cilium's where Cilium has the metric, and
 *     end in `_total` for counters, `_seconds` / `_bytes` for units;
 *   - constant labels `cluster` on every series, and `node` on a node's component (the agent);
 *   - the process's own metrics (CPU, memory, event loop lag, GC) under the same prefix;
 *   - state is read when scraped (gaugeOf, counterOf: a callback reads what the component keeps
 *     anyway), events are counted as they happen (prom-client's Counter and Histogram). A reader
 *     never walks a large table: it reads a count the component keeps.
 * One registry per component instance (no prom-client global): two agents in one test process
 * each have their own.
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';

export { Registry, Counter, Gauge, Histogram } from 'prom-client';

export const METRIC_PREFIX = 'weft_';

export interface RegistryOptions {
  /** Constant label `cluster` on every series. */
  cluster: string;
  /** Constant label `node` on every series (a node's component). */
  node?: string;
  /** The process's own metrics, `weft_process_*` and `weft_nodejs_*` (default true). */
  processMetrics?: boolean;
}

/** A registry with Weft's constant labels and, unless asked not to, the process's metrics. */
export function createRegistry(options: RegistryOptions): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ cluster: options.cluster, ...(options.node !== undefined ? { node: options.node } : {}) });
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
  return registry;
}

export type Labels = Record<string, string | number>;
/** What a reader gives at a scrape: every series it has now, as [labels, value]. */
export type Samples = Iterable<readonly [Labels, number]>;
export type Reader = () => Samples | Promise<Samples>;

interface FamilyOptions {
  name: string;
  help: string;
  labelNames?: readonly string[];
  read: Reader;
}

/**
 * A gauge read at every scrape: the series `read` gives, and only those (a remote that went is no
 * longer reported). A gauge without labels that `read` gives no value has no sample at all.
 */
export function gaugeOf(registry: Registry, o: FamilyOptions): Gauge {
  return new Gauge(readOnScrape(registry, o, (g: Gauge, labels, value) => g.set(labels, value)));
}

/**
 * A counter read at every scrape from a total the component keeps (since it started, or since the
 * datapath's maps were created): monotonic as that total is.
 */
export function counterOf(registry: Registry, o: FamilyOptions): Counter {
  return new Counter(readOnScrape(registry, o, (c: Counter, labels, value) => c.inc(labels, value)));
}

/** A family's options whose collect() replaces its series with what `read` gives (`put` one each). */
function readOnScrape<M extends Gauge | Counter>(registry: Registry, o: FamilyOptions, put: (metric: M, labels: Labels, value: number) => void) {
  const labelNames = [...(o.labelNames ?? [])];
  return {
    name: o.name,
    help: o.help,
    labelNames,
    registers: [registry],
    async collect(this: M) {
      this.reset();
      if (labelNames.length === 0) this.remove();
      for (const [labels, value] of await o.read()) put(this, labels, value);
    },
  };
}
