/**
 * ResourceStore: standalone mode's object store, in the cluster's etcd.
 *   weft/resources/v1/<Kind>/<namespace>/<name>   (namespace "_" for cluster-scoped kinds)
 * Apply and delete are single transactions: every object of a request lands,
 * or none does.
 */
import { cmp, op, PrefixWatcher, type KvClient, type WatchEvent, type Logger, type TxnOp } from './deps.js';
import { ResourceNotFoundError } from './errors.js';
import { resourceRef, type Resource, type ResourceKind } from './types.js';

export const RESOURCES_ROOT = 'weft/resources/v1/';

export function resourceKey(r: { kind: string; metadata: { name: string; namespace?: string | undefined } }): string {
  return `${RESOURCES_ROOT}${r.kind}/${r.metadata.namespace ?? '_'}/${r.metadata.name}`;
}

export interface ApplyResult {
  ref: string;
  /** created, configured (changed) or unchanged, as kubectl says. */
  action: 'created' | 'configured' | 'unchanged';
}

export class ResourceStore {
  constructor(private readonly kv: KvClient) {}

  /** Stores every resource in one transaction. */
  async apply(resources: readonly Resource[], options: { signal?: AbortSignal } = {}): Promise<ApplyResult[]> {
    const keys = resources.map(resourceKey);
    const reads = await this.kv.txn('read resources before apply', { compare: [], success: keys.map((k) => op.get(k)) }, options);
    const results: ApplyResult[] = resources.map((r, i) => {
      const prev = reads.gets[i]?.[0];
      const action = !prev ? 'created' : prev.value.toString() === JSON.stringify(r) ? 'unchanged' : 'configured';
      return { ref: resourceRef(r), action };
    });
    const writes: TxnOp[] = resources.map((r, i) => op.put(keys[i]!, JSON.stringify(r)));
    if (writes.length > 0) await this.kv.txn(`apply ${resources.length} resources`, { compare: [], success: writes }, options);
    return results;
  }

  /** Deletes every resource in one transaction; if any is missing, deletes none (unless ignoreNotFound). */
  async delete(refs: ReadonlyArray<{ kind: string; metadata: { name: string; namespace?: string | undefined } }>, options: { signal?: AbortSignal; ignoreNotFound?: boolean } = {}): Promise<string[]> {
    const keys = refs.map(resourceKey);
    const res = await this.kv.txn(`delete ${refs.length} resources`, {
      compare: options.ignoreNotFound ? [] : keys.map((k) => cmp.present(k)),
      success: keys.map((k) => op.delete(k)),
      failure: keys.map((k) => op.get(k)),
    }, options);
    if (!res.succeeded) {
      const missing = refs.filter((_, i) => (res.gets[i] ?? []).length === 0).map((r) => resourceRef(r));
      throw new ResourceNotFoundError(missing.join(', '));
    }
    return refs.map((r) => resourceRef(r));
  }

  async get<S = unknown>(kind: ResourceKind, name: string, namespace?: string): Promise<Resource<S> | undefined> {
    const kv = await this.kv.get(resourceKey({ kind, metadata: namespace !== undefined ? { name, namespace } : { name } }));
    return kv ? (JSON.parse(kv.value.toString()) as Resource<S>) : undefined;
  }

  async list<S = unknown>(kind: ResourceKind): Promise<Array<Resource<S>>> {
    const { items } = await this.kv.list(`${RESOURCES_ROOT}${kind}/`);
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
    return new PrefixWatcher(this.kv, `${RESOURCES_ROOT}${kind}/`, {
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
}
