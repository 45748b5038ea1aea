/**
 * ResourceStore: standalone mode's object store, in the cluster's etcd.
 *   weft/resources/v1/<Kind>/<namespace>/<name>   (namespace "_" for cluster-scoped kinds)
 *   weft/resources/v1/_clusterips/<ip>            the resourceKey of the Service holding ip
 * Apply and delete are single transactions when they fit in one (etcd refuses
 * more than --max-txn-ops operations, 128 by default): every object of a
 * request lands, or none does, clusterIP index keys included. A larger request
 * is read, checked and planned whole first (so an address conflict or a
 * missing object still stores or deletes nothing), then written in
 * transactions of at most maxTxnOps operations; each keeps its own guards and
 * is retried alone when a concurrent writer wins. Only a failure in the middle
 * of those writes (etcd gone, or concurrent writers winning every attempt)
 * leaves part of such a request done, and its error says how much; applying
 * or deleting again finishes it.
 *
 * ClusterIPs, as the Kubernetes API server assigns them: a Service applied
 * without spec.clusterIP keeps its stored one, or gets a random free address
 * of SERVICE_CIDR; an explicit one must be in the range and free; once stored
 * it never changes. A newly claimed index key is created in the transaction
 * that stores its Service, on condition that it is still absent, and the
 * transaction requires every Service it writes or deletes to be as it was read,
 * so two Services never share an address and no address is decided from a
 * stale version, even with concurrent appliers. A lost race re-reads and
 * retries. The index sits beside the kinds under `_clusterips/`: kinds are
 * capitalized, so no list or watch of a kind ever sees it.
 */
import { isDeepStrictEqual } from 'node:util';
import { clusterIPProblem, pickFreeClusterIP, SERVICE_CIDR } from './cluster-ip.js';
import { Backoff, cmp, op, PrefixWatcher, sleep, type Compare, type KeyValue, type KvClient, type Logger, type TxnOp, type WatchEvent } from './deps.js';
import { ClusterIPExhaustedError, ClusterIPInUseError, InvalidResourceError, ResourceConflictError, ResourceNotFoundError } from './errors.js';
import type { ResourceSource } from './source.js';
import { NAMESPACED, resourceRef, type Resource, type ResourceKind, type ServiceSpec } from './types.js';

export const RESOURCES_ROOT = 'weft/resources/v1/';

/** Prefix of the clusterIP index: `<prefix><ip>` holds the resourceKey of the Service with that address. */
export const CLUSTER_IP_INDEX = `${RESOURCES_ROOT}_clusterips/`;

type ObjectRef = { kind: string; metadata: { name: string; namespace?: string | undefined } };

export function resourceKey(r: ObjectRef): string {
  return `${RESOURCES_ROOT}${r.kind}/${r.metadata.namespace ?? '_'}/${r.metadata.name}`;
}

export function clusterIPKey(ip: string): string {
  return `${CLUSTER_IP_INDEX}${ip}`;
}

export interface ApplyResult {
  ref: string;
  /** created, configured (changed) or unchanged, as kubectl says. */
  action: 'created' | 'configured' | 'unchanged';
  /** A Service's address, as stored. */
  clusterIP?: string;
}

export interface ResourceStoreOptions {
  /** Transactions tried per apply or delete before ResourceConflictError. Default 8. */
  maxAttempts?: number;
  /** Operations per transaction, each of its lists (etcd's --max-txn-ops). Default 128, etcd's default. */
  maxTxnOps?: number;
  /** Bytes of keys and values per transaction, under etcd's --max-request-bytes (1.5 MiB by default). Default 1 MiB. */
  maxTxnBytes?: number;
  /** Random source in [0,1) for picking clusterIPs, replaceable for tests. */
  random?: () => number;
}

/** One object's part of a write: its guards, its writes, and what to report when they land. */
interface ItemPlan<R> {
  compare: Compare[];
  writes: TxnOp[];
  result: R;
}

export class ResourceStore implements ResourceSource {
  private readonly maxAttempts: number;
  private readonly random: () => number;
  private readonly maxTxnOps: number;
  private readonly maxTxnBytes: number;

  constructor(
    private readonly kv: KvClient,
    options: ResourceStoreOptions = {},
  ) {
    this.maxAttempts = options.maxAttempts ?? 8;
    this.random = options.random ?? Math.random;
    // Two operations per object at most (a Service's put and index claim, or its two guards).
    this.maxTxnOps = Math.max(2, options.maxTxnOps ?? 128);
    this.maxTxnBytes = options.maxTxnBytes ?? 1 << 20;
  }

  /** Stores every resource (one transaction when it fits, see above), assigning Services their clusterIPs. */
  async apply(resources: readonly Resource[], options: { signal?: AbortSignal } = {}): Promise<ApplyResult[]> {
    const keys = resources.map(resourceKey);
    rejectDuplicates(resources, keys);
    return this.writeInBatches(`apply ${listRefs(resources)}`, 'apply', resources.length, options, async (pending) => {
      const prevs = await this.readKeys(pending.map((i) => keys[i]!), 'read resources before apply', options);
      const subset = pending.map((i) => resources[i]!);
      const index = await this.readIndexForApply(subset, prevs, options);
      return this.planApply(subset, pending.map((i) => keys[i]!), prevs, index);
    });
  }

  /**
   * Deletes every resource with the clusterIP index keys of Services (one
   * transaction when it fits, see above); if any is missing, deletes none
   * (unless ignoreNotFound).
   */
  async delete(refs: readonly ObjectRef[], options: { signal?: AbortSignal; ignoreNotFound?: boolean } = {}): Promise<string[]> {
    const keys = refs.map(resourceKey);
    return this.writeInBatches(`delete ${listRefs(refs)}`, 'delete', refs.length, options, async (pending) => {
      const prevs = await this.readKeys(pending.map((i) => keys[i]!), 'read resources before delete', options);
      const missing = pending.filter((_, j) => !prevs[j]).map((i) => refs[i]!);
      if (missing.length > 0 && !options.ignoreNotFound) throw new ResourceNotFoundError(missing.map((r) => resourceRef(r)).join(', '));
      const ips = pending.map((i, j) => (refs[i]!.kind === 'Service' ? storedClusterIP(prevs[j]) : undefined));
      const held = ips.filter((ip): ip is string => ip !== undefined);
      const index = held.length > 0 ? await this.readIndex(held.map(clusterIPKey), options) : new Map<string, string>();
      return pending.map((i, j): ItemPlan<string> => {
        const r = refs[i]!;
        const key = keys[i]!;
        const prev = prevs[j];
        const compare: Compare[] = [];
        const writes: TxnOp[] = [op.delete(key)];
        // A Service must be deleted as read, or its index key (read from it) could outlive it.
        if (r.kind === 'Service') compare.push(prev ? cmp.modRevisionIs(key, prev.modRevision) : cmp.absent(key));
        else if (!options.ignoreNotFound) compare.push(cmp.present(key));
        const ip = ips[j];
        // An address indexed to another Service (never by this store) is not ours to free.
        if (ip !== undefined && index.get(ip) === key) {
          compare.push(cmp.valueIs(clusterIPKey(ip), key));
          writes.push(op.delete(clusterIPKey(ip)));
        }
        return { compare, writes, result: resourceRef(r) };
      });
    });
  }

  /**
   * The write loop shared by apply and delete. `plan` reads and decides the
   * objects not written yet (indexes into the request), throwing when the
   * request must be refused; their writes go out in as few transactions as the
   * limits allow. A transaction whose guards fail re-plans what is left.
   */
  private async writeInBatches<R>(action: string, verb: string, count: number, options: { signal?: AbortSignal }, plan: (pending: number[]) => Promise<Array<ItemPlan<R>>>): Promise<R[]> {
    const results = new Array<R>(count);
    let pending = Array.from({ length: count }, (_, i) => i);
    const backoff = new Backoff({ initialMs: 5, maxMs: 200 });
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      let items: Array<ItemPlan<R>>;
      try {
        items = await plan(pending);
      } catch (err) {
        throw this.partly(err, count - pending.length, count, verb);
      }
      const batches = this.batch(items);
      const left = new Set(pending);
      let lost = false;
      try {
        for (const b of batches) {
          const res = await this.kv.txn(`${verb} ${b.length} resources`, { compare: b.flatMap((j) => items[j]!.compare), success: b.flatMap((j) => items[j]!.writes) }, options);
          if (!res.succeeded) {
            lost = true;
            break;
          }
          for (const j of b) {
            results[pending[j]!] = items[j]!.result;
            left.delete(pending[j]!);
          }
        }
      } catch (err) {
        throw this.partly(err, count - left.size, count, verb);
      }
      if (!lost) return results;
      pending = pending.filter((i) => left.has(i));
      if (attempt > 1 && attempt < this.maxAttempts) await sleep(backoff.next(), options.signal, `${verb[0]!.toUpperCase()}${verb.slice(1)} resources`);
    }
    throw this.partly(new ResourceConflictError(action, this.maxAttempts), count - pending.length, count, verb);
  }

  /** Groups consecutive items into transactions within maxTxnOps (per list) and maxTxnBytes. */
  private batch(items: ReadonlyArray<ItemPlan<unknown>>): number[][] {
    const out: number[][] = [];
    let cur: number[] = [];
    let compares = 0;
    let writes = 0;
    let bytes = 0;
    items.forEach((it, j) => {
      const b = it.writes.reduce((n, w) => n + _bytes(w.key) + (w.type === 'put' ? _bytes(w.value) : 0), 0) + it.compare.reduce((n, c) => n + _bytes(c.key) + (c.target === 'value' ? _bytes(c.value) : 8), 0);
      if (cur.length > 0 && (compares + it.compare.length > this.maxTxnOps || writes + it.writes.length > this.maxTxnOps || bytes + b > this.maxTxnBytes)) {
        out.push(cur);
        cur = [];
        compares = writes = bytes = 0;
      }
      cur.push(j);
      compares += it.compare.length;
      writes += it.writes.length;
      bytes += b;
    });
    if (cur.length > 0) out.push(cur);
    return out;
  }

  /** An error after some transactions of a request landed says so; before any, it is the error itself. */
  private partly(err: unknown, done: number, count: number, verb: string): unknown {
    if (done === 0 || !(err instanceof Error)) return err;
    err.message += ` (${done} of ${count} objects were ${verb === 'apply' ? 'stored' : 'deleted'} before this, in earlier transactions; ${verb} again to finish)`;
    return err;
  }

  /** The stored value of each key (undefined when absent), read in transactions within maxTxnOps. */
  private async readKeys(keys: readonly string[], action: string, options: { signal?: AbortSignal }): Promise<Array<KeyValue | undefined>> {
    const out: Array<KeyValue | undefined> = [];
    for (let i = 0; i < keys.length; i += this.maxTxnOps) {
      const chunk = keys.slice(i, i + this.maxTxnOps);
      const reads = await this.kv.txn(action, { compare: [], success: chunk.map((k) => op.get(k)) }, options);
      chunk.forEach((_, j) => out.push(reads.gets[j]?.[0]));
    }
    return out;
  }

  async get<S = unknown>(kind: ResourceKind, name: string, namespace?: string): Promise<Resource<S> | undefined> {
    const kv = await this.kv.get(resourceKey({ kind, metadata: namespace !== undefined ? { name, namespace } : { name } }));
    return kv ? (JSON.parse(kv.value.toString()) as Resource<S>) : undefined;
  }

  async list<S = unknown>(kind: ResourceKind): Promise<Array<Resource<S>>> {
    const { items } = await this.kv.list(kindPrefix(kind));
    return items.map((kv) => JSON.parse(kv.value.toString()) as Resource<S>);
  }

  /**
   * Watches one kind: `onChange` gets the resource (or its key on deletion).
   * Values that do not parse are reported through `onInvalid`, never thrown.
   */
  watch<S = unknown>(
    kind: ResourceKind,
    handler: { onChange(type: 'upsert' | 'delete', key: string, resource: Resource<S> | undefined): void; onSynced?(): void; onInvalid?(key: string, err: Error): void },
    logger?: Logger,
  ): PrefixWatcher {
    return new PrefixWatcher(this.kv, kindPrefix(kind), {
      onEvent: (e: WatchEvent) => {
        if (e.type === 'delete') return handler.onChange('delete', e.key, undefined);
        try {
          handler.onChange('upsert', e.key, JSON.parse(e.value.toString()) as Resource<S>);
        } catch (err) {
          handler.onInvalid?.(e.key, err as Error);
        }
      },
      onSynced: () => handler.onSynced?.(),
    }, logger ? { logger } : {}).start();
  }

  /**
   * The index entries an apply decides on (address -> owner key): the whole
   * index when some Service needs a new address, else only the addresses asked
   * for or kept. The apply transaction re-checks each one it relies on.
   */
  private async readIndexForApply(resources: readonly Resource[], prevs: ReadonlyArray<KeyValue | undefined>, options: { signal?: AbortSignal }): Promise<Map<string, string>> {
    const wanted: string[] = [];
    let allocates = false;
    resources.forEach((r, i) => {
      if (r.kind !== 'Service') return;
      const ip = (r.spec as ServiceSpec).clusterIP ?? storedClusterIP(prevs[i]);
      if (ip === undefined) allocates = true;
      else wanted.push(ip);
    });
    if (allocates) {
      const { items } = await this.kv.list(CLUSTER_IP_INDEX, options);
      return new Map(items.map((kv) => [kv.key.slice(CLUSTER_IP_INDEX.length), kv.value.toString()]));
    }
    return wanted.length > 0 ? this.readIndex(wanted.map(clusterIPKey), options) : new Map();
  }

  private async readIndex(indexKeys: readonly string[], options: { signal?: AbortSignal }): Promise<Map<string, string>> {
    const found = await this.readKeys(indexKeys, 'read clusterIP index', options);
    return new Map(found.filter((kv): kv is KeyValue => kv !== undefined).map((kv) => [kv.key.slice(CLUSTER_IP_INDEX.length), kv.value.toString()]));
  }

  /** Decides every object's stored form and action; throws when a Service's clusterIP is refused. */
  private planApply(resources: readonly Resource[], keys: readonly string[], prevs: ReadonlyArray<KeyValue | undefined>, index: Map<string, string>): Array<ItemPlan<ApplyResult>> {
    return resources.map((r, i): ItemPlan<ApplyResult> => {
      const key = keys[i]!;
      const prev = prevs[i];
      const compare: Compare[] = [];
      const claims: TxnOp[] = [];
      let stored: Resource = r;
      let clusterIP: string | undefined;
      if (r.kind === 'Service') {
        compare.push(prev ? cmp.modRevisionIs(key, prev.modRevision) : cmp.absent(key));
        clusterIP = this.assignClusterIP(r, key, prev, index, compare, claims);
        stored = { ...r, spec: { ...(r.spec as ServiceSpec), clusterIP } };
      }
      const value = JSON.stringify(stored);
      const action = !prev ? 'created' : sameJson(prev.value.toString(), value) ? 'unchanged' : 'configured';
      const result: ApplyResult = clusterIP !== undefined ? { ref: resourceRef(r), action, clusterIP } : { ref: resourceRef(r), action };
      return { compare, writes: [op.put(key, value), ...claims], result };
    });
  }

  /**
   * The address a Service gets, adding to the transaction the compares (and,
   * for a new claim, the index write) that make it safe. `index` gains the
   * claims of this request, so two Services of one request never share.
   */
  private assignClusterIP(r: Resource, key: string, prev: KeyValue | undefined, index: Map<string, string>, compare: Compare[], claims: TxnOp[]): string {
    const ref = resourceRef(r);
    const wanted = (r.spec as ServiceSpec).clusterIP;
    const kept = storedClusterIP(prev);
    if (kept !== undefined && wanted !== undefined && wanted !== kept) {
      throw new InvalidResourceError(ref, `spec.clusterIP is immutable: it is ${kept}, the request asks for ${wanted} (delete and re-create the Service to change it)`);
    }
    let ip = wanted ?? kept;
    if (ip === undefined) {
      ip = pickFreeClusterIP(index, this.random);
      if (ip === undefined) throw new ClusterIPExhaustedError(ref, SERVICE_CIDR);
    } else if (ip !== kept) {
      // A stored address is not re-checked (as in Kubernetes): changing the range must not lock Services.
      const problem = clusterIPProblem(ip);
      if (problem !== undefined) throw new InvalidResourceError(ref, `spec.clusterIP: ${problem}`);
    }
    const owner = index.get(ip);
    if (owner === undefined) {
      // New, or a kept address whose index key went missing: claim it.
      compare.push(cmp.absent(clusterIPKey(ip)));
      claims.push(op.put(clusterIPKey(ip), key));
      index.set(ip, key);
    } else if (owner === key) {
      compare.push(cmp.valueIs(clusterIPKey(ip), key));
    } else {
      throw new ClusterIPInUseError(ref, ip, owner.startsWith(RESOURCES_ROOT) ? owner.slice(RESOURCES_ROOT.length) : JSON.stringify(owner));
    }
    return ip;
  }
}

function kindPrefix(kind: ResourceKind): string {
  // Only real kinds: a prefix like `_clusterips` would expose the index as objects.
  if (!Object.hasOwn(NAMESPACED, kind)) throw new InvalidResourceError(`kind ${JSON.stringify(kind)}`, `not one of ${Object.keys(NAMESPACED).join(', ')}`);
  return `${RESOURCES_ROOT}${kind}/`;
}

/** One object twice in a request would be two writes of one key (etcd refuses) and could claim two addresses. */
function rejectDuplicates(resources: readonly Resource[], keys: readonly string[]): void {
  const seen = new Set<string>();
  keys.forEach((k, i) => {
    if (seen.has(k)) throw new InvalidResourceError(resourceRef(resources[i]!), 'appears more than once in one request');
    seen.add(k);
  });
}

function storedClusterIP(prev: KeyValue | undefined): string | undefined {
  if (!prev) return undefined;
  try {
    const ip = (JSON.parse(prev.value.toString()) as Resource<Partial<ServiceSpec>>).spec?.clusterIP;
    return typeof ip === 'string' && ip !== '' ? ip : undefined;
  } catch {
    return undefined; // an unreadable stored object is replaced, as any other
  }
}

/** Equal as JSON values, whatever the key order. */
function sameJson(a: string, b: string): boolean {
  try {
    return isDeepStrictEqual(JSON.parse(a), JSON.parse(b));
  } catch {
    return false;
  }
}

function _bytes(v: string | Buffer): number {
  return typeof v === 'string' ? Buffer.byteLength(v) : v.length;
}

function listRefs(refs: readonly ObjectRef[]): string {
  const names = refs.slice(0, 3).map((r) => resourceRef(r));
  return refs.length > 3 ? `${names.join(', ')} and ${refs.length - 3} more` : names.join(', ');
}
