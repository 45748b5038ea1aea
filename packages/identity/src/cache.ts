/**
 * IdentityCache: every identity of a cluster, id -> labels and labels -> id,
 * fed by a watch on the master keys. Lookups are plain Map reads (no I/O), so
 * the datapath-facing side of the agent can resolve identities at memory speed.
 *
 * etcd content is not trusted: a key that is not a valid id of this cluster's
 * range (or a reserved id), or a value that is not a canonical label set, is
 * skipped and reported (log, `invalid` map, 'invalid' event); the cache never
 * throws on bad data.
 */
import { EventEmitter } from 'node:events';
import { silentLogger, type Logger } from '@weft/common';
import { PrefixWatcher, type KvClient, type WatchEvent } from '@weft/kvstore';
import { CorruptIdentityEntryError } from './errors.js';
import { LabelSet } from './labels.js';
import { IdentityLayout } from './layout.js';
import { inCluster, parseIdentity } from './numeric.js';

export interface IdentityCacheOptions {
  layout?: IdentityLayout;
  /** Only identities of this cluster are accepted. */
  clusterId: number;
  logger?: Logger;
}

export interface IdentityChange {
  type: 'upsert' | 'delete';
  id: number;
  labels: LabelSet;
}

export interface IdentityCache {
  on(event: 'change', listener: (change: IdentityChange) => void): this;
  on(event: 'invalid', listener: (err: CorruptIdentityEntryError) => void): this;
  on(event: 'synced', listener: (revision: number) => void): this;
}

export class IdentityCache extends EventEmitter {
  private readonly byId = new Map<number, LabelSet>();
  private readonly byLabels = new Map<string, number>();
  /** key -> reason, for every entry skipped as corrupt. */
  readonly invalid = new Map<string, string>();
  private readonly watcher: PrefixWatcher;
  private readonly layout: IdentityLayout;
  private readonly clusterId: number;
  private readonly log: Logger;

  constructor(client: KvClient, options: IdentityCacheOptions) {
    super();
    this.layout = options.layout ?? new IdentityLayout();
    this.clusterId = options.clusterId;
    this.log = options.logger ?? silentLogger();
    this.watcher = new PrefixWatcher(client, this.layout.mastersPrefix, {
      onEvent: (e) => this.apply(e),
      onSynced: (rev) => this.emit('synced', rev),
    }, { logger: this.log });
  }

  start(): this {
    this.watcher.start();
    return this;
  }

  stop(): Promise<void> {
    return this.watcher.stop();
  }

  get synced(): boolean {
    return this.watcher.synced;
  }

  waitSynced(signal?: AbortSignal): Promise<void> {
    return this.watcher.waitSynced(signal);
  }

  get size(): number {
    return this.byId.size;
  }

  /** Watch statistics (lists, reconnects, compactions, events). */
  get watchStats(): Readonly<PrefixWatcher['stats']> {
    return this.watcher.stats;
  }

  lookupById(id: number): LabelSet | undefined {
    return this.byId.get(id);
  }

  lookupByLabels(key: string): number | undefined {
    return this.byLabels.get(key);
  }

  has(id: number): boolean {
    return this.byId.has(id);
  }

  /** Marks an id as used before the watch reports it (our own successful create). */
  noteCreated(id: number, labels: LabelSet): void {
    if (this.byId.has(id)) return;
    this.set(id, labels);
    // Announced here, not when the watch brings it back (then it is known and skipped): the node's
    // own new identities must reach its listeners too (the policy engine admits them to other
    // endpoints' policies).
    this.emit('change', { type: 'upsert', id, labels } satisfies IdentityChange);
  }

  entries(): IterableIterator<[number, LabelSet]> {
    return this.byId.entries();
  }

  private apply(event: WatchEvent): void {
    const suffix = this.layout.masterSuffix(event.key);
    const id = parseIdentity(suffix);
    if (id === undefined || !inCluster(id, this.clusterId)) {
      if (event.type === 'upsert') this.reject(event.key, `key suffix ${JSON.stringify(suffix)} is not an identity of cluster ${this.clusterId}`);
      else this.invalid.delete(event.key);
      return;
    }
    if (event.type === 'delete') {
      this.invalid.delete(event.key);
      const labels = this.byId.get(id);
      if (!labels) return;
      this.byId.delete(id);
      if (this.byLabels.get(labels.key) === id) this.byLabels.delete(labels.key);
      this.emit('change', { type: 'delete', id, labels } satisfies IdentityChange);
      return;
    }
    const text = event.value.toString();
    const known = this.byId.get(id);
    if (known && known.key === text) return; // our own create, or a repair that rewrote the same labels
    let labels: LabelSet;
    try {
      labels = LabelSet.fromCanonical(text);
    } catch (err) {
      this.reject(event.key, (err as Error).message);
      // A master that turned corrupt no longer names its old labels.
      const old = this.byId.get(id);
      if (old) {
        this.byId.delete(id);
        if (this.byLabels.get(old.key) === id) this.byLabels.delete(old.key);
        this.emit('change', { type: 'delete', id, labels: old } satisfies IdentityChange);
      }
      return;
    }
    this.invalid.delete(event.key);
    const old = known;
    this.set(id, labels);
    if (old && this.byLabels.get(old.key) === id) this.byLabels.delete(old.key);
    this.emit('change', { type: 'upsert', id, labels } satisfies IdentityChange);
  }

  private set(id: number, labels: LabelSet): void {
    this.byId.set(id, labels);
    const other = this.byLabels.get(labels.key);
    if (other !== undefined && other !== id && this.byId.get(other)?.key === labels.key) {
      // Two masters claim one label set: only possible if someone wrote etcd by
      // hand. Keep the lower id, deterministically on every node, and report.
      this.log.warn({ labels: labels.key, ids: [other, id] }, 'two identities carry the same labels');
      if (other < id) return;
    }
    this.byLabels.set(labels.key, id);
  }

  private reject(key: string, reason: string): void {
    const err = new CorruptIdentityEntryError(key, reason);
    this.invalid.set(key, reason);
    this.log.warn({ key, code: err.code, reason }, 'skipped corrupt identity entry');
    this.emit('invalid', err);
  }
}
