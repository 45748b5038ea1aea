/**
 * StoreWatcher: one cluster's store as an agent reads it, the same for this cluster's own records
 * (`weft/state/v1/`) and for each remote's (the mesh cache `weft/mesh/v1/<remote>/` this cluster's
 * clustermesh-apiserver writes), as Cilium's IPIdentityWatcher serves its local kvstore and each
 * remote cluster.
 *
 * It lists and watches the store's root (one PrefixWatcher), parses every record by its kind with
 * @weft/schema's parsers, and tells its handler one typed change per key. The checks that need no
 * other state are made here, once: the record parses, it names the key it is stored under, it
 * belongs to the store's cluster (this cluster's endpoints are held to their key by
 * EndpointOwnership). A record that fails them is reported (`invalid`) and its key
 * counts as gone: what it held before is no longer used either. Checks against other state (who
 * owns an address, which nodes are admitted) are the handler's.
 *
 *   <root>nodes/<name>                NodeRecord of `cluster`
 *   <root>endpoints/<node>/<ip>       EndpointRecord (this cluster's store: by node)
 *   <root>endpoints/<ip>              EndpointRecord (a remote's store)
 *   <root>identities/<id>             the labels of one of the remote's identities
 *   <root>services/<namespace>.<name> ServiceRecord of a remote's global service
 *
 * Keys of other kinds (the importer's `synced/` markers) are not records and are passed over.
 * `stop({ withdraw: true })` tells the handler every key it held is gone: a remote that left.
 */
import type { Logger } from '@weft/common';
import { CLUSTER_LABEL, LabelSet, LOCAL_ID_MIN, clusterIdOf, localIdOf, parseIdentity } from '@weft/identity';
import { PrefixWatcher, type KvClient, type WatchEvent } from '@weft/kvstore';
import { parseEndpointPath, parseEndpointRecord, parseNodeRecord, parseServiceRecord, type EndpointRecord, type NodeRecord, type ServiceRecord } from '@weft/schema';

export interface StoreSource {
  /** The cluster whose records these are. */
  cluster: string;
  /** Its cluster id (this cluster's own, or the one this cluster's clustermesh configuration gives the remote). */
  clusterId: number;
  /** The prefix its records sit under, ending in `/`. */
  root: string;
  /** This cluster's own store (endpoints by node), or a remote's. */
  local: boolean;
}

/** One change to a key of the store: the record now there, or undefined when it is gone or invalid. */
export type StoreChange =
  | { kind: 'node'; key: string; name: string; record: NodeRecord | undefined }
  | { kind: 'endpoint'; key: string; node: string | undefined; ip: string; record: EndpointRecord | undefined }
  | { kind: 'identity'; key: string; id: number; labels: LabelSet | undefined }
  | { kind: 'service'; key: string; name: string; record: ServiceRecord | undefined };

export interface StoreHandler {
  /**
   * Called synchronously, in the store's order, after `invalid` for the same key. A key may be told
   * gone that was never told present (its record was invalid): nothing to undo. The watcher keeps no
   * copy of what it told: a handler holds the records it uses.
   */
  change(change: StoreChange): void;
  /** Why the record at `key` is not used (undefined: it is used, or the key is gone). */
  invalid(key: string, reason: string | undefined): void;
}

export class StoreWatcher {
  private readonly watcher: PrefixWatcher;
  private closed = false;
  private readonly closedSignal = new AbortController();

  constructor(
    kv: KvClient,
    readonly source: StoreSource,
    private readonly handler: StoreHandler,
    log: Logger,
  ) {
    this.watcher = new PrefixWatcher(kv, source.root, { onEvent: (e) => this.onEvent(e) }, { logger: log.child({ store: source.cluster }) });
  }

  start(): this {
    this.watcher.start();
    return this;
  }

  get synced(): boolean {
    return this.watcher.synced;
  }

  /** Resolves once the first list has been told, or when the watcher stops (it has nothing more to tell). */
  waitSynced(): Promise<void> {
    return this.watcher.waitSynced(this.closedSignal.signal).catch(() => undefined);
  }

  /**
   * Stops watching. With `withdraw`, every record it told of is told gone first, synchronously:
   * whatever the handler learns next about this cluster comes from another watcher.
   */
  stop(options: { withdraw?: boolean } = {}): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.closedSignal.abort();
      // Every key the store holds is told gone (the key says what it named); a key whose record was
      // invalid is told gone too, which a handler takes as the no-op it is.
      if (options.withdraw) {
        for (const key of [...this.watcher.keys()]) {
          const gone = this.goneAt(key);
          if (typeof gone === 'object') this.tell(key, undefined, gone);
        }
      }
    }
    return this.watcher.stop();
  }

  private onEvent(e: WatchEvent): void {
    if (this.closed) return;
    const gone = this.goneAt(e.key);
    if (gone === undefined) return;
    if (typeof gone === 'string') return this.tell(e.key, e.type === 'upsert' ? gone : undefined, undefined);
    if (e.type === 'delete') return this.tell(e.key, undefined, gone);
    switch (gone.kind) {
      case 'node': {
        const parsed = parseNodeRecord(e.value, this.source.cluster);
        const checked = typeof parsed === 'object' && parsed.name !== gone.name ? `node record ${parsed.name} stored under ${gone.name}` : parsed;
        return this.tell(e.key, problemOf(checked), { ...gone, record: recordOf(checked) });
      }
      case 'endpoint': {
        // Its identity must be of the store's cluster (reserved ones are for admission to refuse).
        const parsed = parseEndpointRecord(e.value, this.source.clusterId);
        // (This cluster's records are held to their key and node by EndpointOwnership, which says which rule failed.)
        const checked = typeof parsed === 'object' && !this.source.local && parsed.ip !== gone.ip ? `endpoint ${parsed.ip} stored under ${gone.ip}` : parsed;
        return this.tell(e.key, problemOf(checked), { ...gone, record: recordOf(checked) });
      }
      case 'identity': {
        const labels = this.parseIdentityLabels(gone.id, e.value);
        return this.tell(e.key, problemOf(labels), { ...gone, labels: recordOf(labels) });
      }
      case 'service': {
        const parsed = parseServiceRecord(gone.name, e.value.toString());
        return this.tell(e.key, problemOf(parsed), { ...gone, record: recordOf(parsed) });
      }
    }
  }

  /**
   * What a key names, as the change that says it is gone; a string when the key has a record's kind
   * but not its shape; undefined for keys that are not records.
   */
  private goneAt(key: string): StoreChange | string | undefined {
    const rest = key.slice(this.source.root.length);
    const slash = rest.indexOf('/');
    if (slash < 0) return undefined;
    const kind = rest.slice(0, slash);
    const name = rest.slice(slash + 1);
    if (kind === 'nodes') return { kind: 'node', key, name, record: undefined };
    if (kind === 'endpoints') {
      const path = this.source.local ? parseEndpointPath(name) : { node: undefined, ip: name };
      return path ? { kind: 'endpoint', key, node: path.node, ip: path.ip, record: undefined } : 'key is not endpoints/<node>/<ip>';
    }
    if (this.source.local) return undefined;
    if (kind === 'identities') {
      const id = parseIdentity(name);
      return id === undefined ? `identity ${JSON.stringify(name)} is not an identity` : { kind: 'identity', key, id, labels: undefined };
    }
    if (kind === 'services') return { kind: 'service', key, name, record: undefined };
    return undefined;
  }

  /** Only an identity of the remote's own range, labelled with its cluster: never a reserved one, never another cluster's. */
  private parseIdentityLabels(id: number, value: Buffer): LabelSet | string {
    if (clusterIdOf(id) === 0 || localIdOf(id) < LOCAL_ID_MIN) return `identity ${id} is reserved; a remote cannot define it`;
    if (clusterIdOf(id) !== this.source.clusterId) return `identity ${id} is not in ${this.source.cluster}'s range (cluster id ${this.source.clusterId})`;
    let labels: LabelSet;
    try {
      labels = LabelSet.fromCanonical(value.toString());
    } catch (err) {
      return (err as Error).message;
    }
    const cluster = labels.get(CLUSTER_LABEL);
    if (cluster !== this.source.cluster) return `identity ${id} carries ${CLUSTER_LABEL}=${cluster ?? '(none)'}, not ${this.source.cluster}`;
    return labels;
  }

  /** Reports the key's validity, then its change (undefined: a key that names nothing). */
  private tell(key: string, problem: string | undefined, change: StoreChange | undefined): void {
    this.handler.invalid(key, problem);
    if (change) this.handler.change(change);
  }
}

function problemOf<T>(parsed: T | string | undefined): string | undefined {
  return typeof parsed === 'string' ? parsed : undefined;
}

function recordOf<T>(parsed: T | string | undefined): T | undefined {
  return typeof parsed === 'string' ? undefined : parsed;
}
