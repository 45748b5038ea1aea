/**
 * One reader of the exporter (a remote's Sync stream): what it still has to
 * be sent, and the pace it reads at. The data is state, not a log, so the
 * backlog is a set of changed keys per kind and a batch is built from the
 * current values when the reader can take it (latest value wins; a key gone
 * meanwhile is sent as a delete). The backlog is thus bounded by the keys
 * changed since the reader last caught up, never by how many changes there
 * were, however slowly it reads.
 *
 * Pace: at most IN_FLIGHT_BYTES written and not yet taken by the transport,
 * and nothing while the stream's write() has said false until it drains (a
 * gRPC stream honours HTTP/2 flow control, so a reader that stops reading
 * stops its own stream). A reader that takes nothing for stallMs while there
 * is something to send is given up (`onStall`): the apiserver resets its
 * stream, the backlog is freed, and the remote's importer reconnects to a
 * fresh snapshot.
 *
 * Order: kinds in the order asked (identities, nodes, endpoints, services),
 * an earlier kind's backlog first; per kind the snapshot (every key present at
 * subscribe time), `synced` once that backlog first runs dry, then changes.
 */
import type { MeshKind, SyncBatch } from './types.js';

/** Records per message, as before flow control: the cold-sync target was measured with it. */
export const BATCH_RECORDS = 1000;
/** Bytes per message (records are up to 16 KiB; a message must stay under MAX_MESSAGE_BYTES). */
export const BATCH_BYTES = 4 << 20;
/** Bytes written to the stream and not yet taken by the transport. */
export const IN_FLIGHT_BYTES = 1 << 20;

/** Where batches go: a gRPC server stream, or an in-process listener. */
export interface BatchSink {
  /** Like a Writable: false asks to wait for 'drain'; `done` runs when the transport took the batch. */
  write(batch: SyncBatch, done: (err?: Error | null) => void): boolean;
  once(event: 'drain', listener: () => void): unknown;
}

/** What a subscription holds right now, for status. */
export interface Backlog {
  /** Keys changed and not yet sent. */
  pendingKeys: number;
  inFlightBytes: number;
  /** When the reader stopped taking what it was sent, if it has. */
  stalledSince?: string;
}

export class Subscription {
  private readonly dirty = new Map<MeshKind, Set<string>>();
  /** Kinds whose `synced` mark is still to be sent. */
  private readonly snapshotting = new Set<MeshKind>();
  private inFlight = 0;
  private waitingForDrain = false;
  private scheduled = false;
  private closed = false;
  private stallTimer: NodeJS.Timeout | undefined;
  private stalledSince: number | undefined;

  constructor(
    private readonly kinds: readonly MeshKind[],
    /** The exporter's current entries of a kind. */
    private readonly data: (kind: MeshKind) => ReadonlyMap<string, string>,
    private readonly sink: BatchSink,
    private readonly options: { stallMs?: number; onStall?: () => void; onClose?: () => void } = {},
  ) {
    for (const kind of kinds) {
      this.dirty.set(kind, new Set(data(kind).keys()));
      this.snapshotting.add(kind);
    }
    this.schedule();
  }

  /** A key of `kind` changed (or went): it will be sent with its value at sending time. */
  changed(kind: MeshKind, key: string): void {
    const set = this.dirty.get(kind);
    if (!set || this.closed) return;
    set.add(key);
    this.schedule();
  }

  /** Stops sending and frees the backlog (idempotent). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.stallTimer);
    this.dirty.clear();
    this.options.onClose?.();
  }

  backlog(): Backlog {
    let pendingKeys = 0;
    for (const set of this.dirty.values()) pendingKeys += set.size;
    return { pendingKeys, inFlightBytes: this.inFlight, ...(this.stalledSince !== undefined ? { stalledSince: new Date(this.stalledSince).toISOString() } : {}) };
  }

  /** Sends on the next turn, so changes arriving together share a batch. */
  private schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    while (!this.closed && !this.waitingForDrain && this.inFlight < IN_FLIGHT_BYTES) {
      const next = this.next();
      if (!next) break;
      const { batch, bytes } = next;
      this.inFlight += bytes;
      const ok = this.sink.write(batch, () => {
        this.inFlight -= bytes;
        this.progress();
      });
      if (!ok) {
        this.waitingForDrain = true;
        this.sink.once('drain', () => {
          this.waitingForDrain = false;
          this.progress();
        });
      }
    }
    // Blocked with something to send: the reader has this long to take some of it.
    if (!this.closed && (this.waitingForDrain || this.inFlight >= IN_FLIGHT_BYTES) && this.stallTimer === undefined && this.options.stallMs !== undefined) {
      this.stalledSince ??= Date.now();
      this.stallTimer = setTimeout(() => {
        if (this.closed) return;
        this.close();
        this.options.onStall?.();
      }, this.options.stallMs);
      this.stallTimer.unref();
    }
  }

  /** The reader took something: not stalled, and there may be room for more. */
  private progress(): void {
    clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
    this.stalledSince = undefined;
    this.schedule();
  }

  /** The next batch: from the first kind with a backlog, or the `synced` mark of a kind whose snapshot is out. */
  private next(): { batch: SyncBatch; bytes: number } | undefined {
    for (const kind of this.kinds) {
      const set = this.dirty.get(kind)!;
      if (set.size === 0) {
        if (!this.snapshotting.delete(kind)) continue;
        return { batch: { kind, upserts: [], deletes: [], synced: true }, bytes: 64 };
      }
      const map = this.data(kind);
      const upserts: Array<[string, string]> = [];
      const deletes: string[] = [];
      let bytes = 64;
      for (const key of set) {
        if (upserts.length + deletes.length >= BATCH_RECORDS || bytes >= BATCH_BYTES) break;
        set.delete(key);
        const value = map.get(key);
        if (value === undefined) deletes.push(key);
        else upserts.push([key, value]);
        bytes += key.length + (value?.length ?? 0) + 8;
      }
      const batch: SyncBatch = { kind, upserts, deletes };
      if (set.size === 0 && this.snapshotting.delete(kind)) batch.synced = true;
      return { batch, bytes };
    }
    return undefined;
  }
}
