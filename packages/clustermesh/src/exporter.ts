/**
 * Exporter: this cluster's identities, nodes and endpoints, mirrored from the
 * local etcd into memory by prefix watchers, and served to remote clusters:
 * a snapshot in batches, a synced mark, then every change. Snapshot and
 * subscription happen in one turn of the event loop, so no change falls
 * between them.
 */
import type { Logger } from '@weft/common';
import { IdentityLayout } from '@weft/identity';
import { PrefixWatcher, type KvClient } from '@weft/kvstore';
import { ENDPOINTS_PREFIX, NODES_PREFIX } from '@weft/agent/dist/state.js';
import type { MeshKind, SyncBatch } from './types.js';

const BATCH = 1000;

type Listener = (batch: SyncBatch) => void;

export class Exporter {
  private readonly data = new Map<MeshKind, Map<string, string>>();
  private readonly listeners = new Map<MeshKind, Set<Listener>>();
  private readonly watchers: PrefixWatcher[] = [];

  constructor(
    private readonly kv: KvClient,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const prefixes: Array<[MeshKind, string]> = [
      ['identities', new IdentityLayout().mastersPrefix],
      ['nodes', NODES_PREFIX],
      ['endpoints', ENDPOINTS_PREFIX],
    ];
    for (const [kind, prefix] of prefixes) {
      const map = new Map<string, string>();
      this.data.set(kind, map);
      this.listeners.set(kind, new Set());
      this.watchers.push(new PrefixWatcher(this.kv, prefix, {
        onEvent: (e) => {
          const key = e.key.slice(prefix.length);
          if (e.type === 'delete') {
            map.delete(key);
            this.notify(kind, { kind, upserts: [], deletes: [key] });
          } else {
            const value = e.value.toString();
            map.set(key, value);
            this.notify(kind, { kind, upserts: [[key, value]], deletes: [] });
          }
        },
      }, { logger: this.log }).start());
    }
    await Promise.all(this.watchers.map((w) => w.waitSynced()));
  }

  async stop(): Promise<void> {
    await Promise.all(this.watchers.map((w) => w.stop()));
  }

  /** Local nodes' pod CIDRs, so imports can refuse endpoints that claim them. */
  localValues(kind: MeshKind): IterableIterator<string> {
    return this.data.get(kind)!.values();
  }

  count(kind: MeshKind): number {
    return this.data.get(kind)?.size ?? 0;
  }

  /** Sends the snapshot of `kind` through `send`, then every change until the returned function is called. */
  subscribe(kind: MeshKind, send: Listener): () => void {
    const entries = [...this.data.get(kind)!.entries()];
    for (let i = 0; i < entries.length; i += BATCH) send({ kind, upserts: entries.slice(i, i + BATCH), deletes: [] });
    send({ kind, upserts: [], deletes: [], synced: true });
    const set = this.listeners.get(kind)!;
    set.add(send);
    return () => set.delete(send);
  }

  private notify(kind: MeshKind, batch: SyncBatch): void {
    for (const l of this.listeners.get(kind) ?? []) l(batch);
  }
}
