/**
 * PrefixWatcher: list-then-watch over one etcd prefix, the way every Weft
 * cache learns the cluster's state.
 *
 *  listing ──► watching ──(stream broke)──► reconnecting ──► watching (from last revision + 1)
 *     ▲            │
 *     └─(compacted)┘   a full relist: keys that vanished meanwhile are reported deleted
 *
 * Invariants:
 *  - the handler sees every change exactly as the store went through it, or,
 *    after a compaction, the difference between what it saw and the store now;
 *  - a resume never skips an event: the next revision is derived from the last
 *    event delivered (or a progress notification), never from a creation
 *    header, which may be ahead of events not yet sent;
 *  - handler callbacks are synchronous, so the hot path allocates no promises.
 */
import { Backoff, silentLogger, sleep, type Logger } from '@weft/common';
import type { IWatchResponse, IWatchRequest } from 'etcd3';
import { prefixEnd, type KvClient } from './client.js';
import type { WatchEvent, WatcherState } from './types.js';

export interface WatchHandler {
  /** One change. Called synchronously in revision order. */
  onEvent(event: WatchEvent): void;
  /** The initial list (or a compaction resync) has been fully delivered. */
  onSynced?(revision: number): void;
}

export interface PrefixWatcherOptions {
  logger?: Logger;
  /** Backoff between reconnects. */
  backoff?: Backoff;
}

const ALLOWED_FROM: Record<WatcherState, readonly WatcherState[]> = {
  idle: [],
  listing: ['idle', 'watching', 'reconnecting'],
  watching: ['listing', 'reconnecting'],
  reconnecting: ['watching', 'listing'],
  closed: ['idle', 'listing', 'watching', 'reconnecting'],
};

interface WatchStream {
  on(event: 'data', fn: (res: IWatchResponse) => void): WatchStream;
  on(event: 'error', fn: (err: Error) => void): WatchStream;
  on(event: 'end', fn: () => void): WatchStream;
  write(req: IWatchRequest): boolean;
  cancel(): void;
  removeAllListeners(): void;
}

type StreamOutcome = 'compacted' | 'broken' | 'stopped';

export class PrefixWatcher {
  private _state: WatcherState = 'idle';
  /** key -> mod revision of everything the handler has been told exists. */
  private readonly known = new Map<string, number>();
  private nextRevision = 0;
  private readonly abort = new AbortController();
  private readonly log: Logger;
  private readonly backoff: Backoff;
  private stream: WatchStream | undefined;
  private running: Promise<void> | undefined;
  private syncedOnce = false;
  private readonly syncedWaiters: Array<() => void> = [];
  /** Counters for status and tests. */
  readonly stats = { lists: 0, reconnects: 0, compactions: 0, events: 0 };

  constructor(
    private readonly client: KvClient,
    readonly prefix: string,
    private readonly handler: WatchHandler,
    options: PrefixWatcherOptions = {},
  ) {
    this.log = (options.logger ?? silentLogger()).child({ prefix });
    this.backoff = options.backoff ?? new Backoff({ initialMs: 100, maxMs: 5000 });
  }

  get state(): WatcherState {
    return this._state;
  }

  /** Whether the initial list has been delivered. */
  get synced(): boolean {
    return this.syncedOnce;
  }

  /** The revision up to which the handler has seen everything. */
  get revision(): number {
    return this.nextRevision - 1;
  }

  /** Number of keys currently known under the prefix. */
  get size(): number {
    return this.known.size;
  }

  /** The keys currently known under the prefix (what the handler was told exists). */
  keys(): IterableIterator<string> {
    return this.known.keys();
  }

  start(): this {
    if (this._state !== 'idle') return this;
    this.running = this.run().catch((err) => {
      if (this._state !== 'closed') this.log.error({ err: (err as Error).message }, 'watcher stopped by an unexpected error');
    });
    return this;
  }

  /** Resolves once the initial list has been delivered, or rejects when `signal` fires. */
  waitSynced(signal?: AbortSignal): Promise<void> {
    if (this.syncedOnce) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = (): void => reject(signal?.reason ?? new Error('aborted'));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.syncedWaiters.push(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }

  async stop(): Promise<void> {
    if (this._state === 'closed') return;
    this.transition('closed', 'stopped by owner');
    this.abort.abort();
    this.stream?.cancel();
    await this.running;
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    let needList = true;
    while (!signal.aborted) {
      if (needList) {
        this.transition('listing', this.stats.lists === 0 ? 'start' : 'resync');
        await this.list(signal);
        if (signal.aborted) return;
      }
      this.transition('watching', `from revision ${this.nextRevision}`);
      const outcome = await this.watchOnce();
      if (outcome === 'stopped' || signal.aborted) return;
      needList = outcome === 'compacted';
      if (!needList) {
        this.stats.reconnects++;
        this.transition('reconnecting', 'watch stream broke');
        try {
          await sleep(this.backoff.next(), signal);
        } catch {
          return;
        }
      }
    }
  }

  /** Lists the prefix (retrying until it works or we stop) and reconciles. */
  private async list(signal: AbortSignal): Promise<void> {
    const result = await this.client.list(this.prefix, { signal, retry: { maxAttempts: Infinity, initialMs: 100, maxMs: 5000 } }).catch((err) => {
      if (signal.aborted) return undefined;
      throw err;
    });
    if (!result) return;
    this.stats.lists++;
    const seen = new Set<string>();
    for (const kv of result.items) {
      seen.add(kv.key);
      if (this.known.get(kv.key) === kv.modRevision) continue;
      this.known.set(kv.key, kv.modRevision);
      this.deliver({ type: 'upsert', key: kv.key, value: kv.value, modRevision: kv.modRevision });
    }
    for (const key of [...this.known.keys()]) {
      if (seen.has(key)) continue;
      this.known.delete(key);
      this.deliver({ type: 'delete', key, value: Buffer.alloc(0), modRevision: result.revision });
    }
    this.nextRevision = result.revision + 1;
    this.handler.onSynced?.(result.revision);
    if (!this.syncedOnce) {
      this.syncedOnce = true;
      for (const w of this.syncedWaiters.splice(0)) w();
    }
  }

  /** Runs one watch stream until it breaks, is compacted, or we stop. */
  private async watchOnce(): Promise<StreamOutcome> {
    let stream: WatchStream;
    try {
      stream = (await this.client.etcd.watchClient.watch()) as unknown as WatchStream;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'cannot open watch stream');
      return 'broken';
    }
    if (this.abort.signal.aborted) {
      stream.cancel();
      return 'stopped';
    }
    this.stream = stream;
    return new Promise<StreamOutcome>((resolve) => {
      let done = false;
      const finish = (outcome: StreamOutcome): void => {
        if (done) return;
        done = true;
        this.stream = undefined;
        stream.removeAllListeners();
        stream.on('error', () => undefined); // late errors from the cancelled call
        stream.cancel();
        resolve(this.abort.signal.aborted ? 'stopped' : outcome);
      };
      stream
        .on('data', (res) => {
          if (res.canceled) {
            const compactRevision = Number(res.compact_revision);
            if (compactRevision > 0) {
              this.stats.compactions++;
              this.log.info({ compactRevision, wanted: this.nextRevision }, 'watch revision compacted; relisting');
              return finish('compacted');
            }
            this.log.warn({ reason: res.cancel_reason }, 'watch cancelled by etcd');
            return finish('broken');
          }
          if (res.created) {
            this.backoff.reset();
            return;
          }
          this.onResponse(res);
        })
        .on('error', (err) => {
          if (!this.abort.signal.aborted) this.log.warn({ err: err.message }, 'watch stream error');
          finish('broken');
        })
        .on('end', () => finish('broken'));
      stream.write({
        create_request: {
          key: Buffer.from(this.prefix),
          range_end: prefixEnd(this.prefix),
          start_revision: this.nextRevision,
          progress_notify: true,
        },
      });
    });
  }

  private onResponse(res: IWatchResponse): void {
    const events = res.events;
    if (events.length === 0) {
      // Progress notification: everything up to the header revision was sent.
      this.nextRevision = Math.max(this.nextRevision, Number(res.header.revision) + 1);
      return;
    }
    for (const ev of events) {
      const key = ev.kv.key.toString();
      const modRevision = Number(ev.kv.mod_revision);
      if (ev.type === 'Delete') {
        if (!this.known.delete(key)) continue;
        this.deliver({ type: 'delete', key, value: Buffer.alloc(0), modRevision });
      } else {
        this.known.set(key, modRevision);
        this.deliver({ type: 'upsert', key, value: ev.kv.value, modRevision });
      }
      this.nextRevision = modRevision + 1;
    }
  }

  private deliver(event: WatchEvent): void {
    this.stats.events++;
    try {
      this.handler.onEvent(event);
    } catch (err) {
      // A handler bug must not kill the watch for every other consumer; it is logged loudly.
      this.log.error({ key: event.key, err: (err as Error).message }, 'watch handler threw');
    }
  }

  private transition(to: WatcherState, cause: string): void {
    const from = this._state;
    if (from === to) return;
    if (!ALLOWED_FROM[to].includes(from)) return;
    this._state = to;
    this.log.debug({ from, to, cause }, 'watcher state');
  }
}
