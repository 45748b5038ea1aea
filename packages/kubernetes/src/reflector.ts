/**
 * Reflector: list-then-watch over one API collection, the Kubernetes
 * counterpart of the kvstore's PrefixWatcher.
 *
 *  listing ──► watching ──(stream ended or failed)──► reconnecting ──► watching (from the last resourceVersion)
 *     ▲            │
 *     └──(410 Gone: ERROR event or HTTP status)─┘   a full relist: objects that vanished are reported deleted
 *
 * Why not the client's makeInformer / ListWatch (1.4.0): it never asks for
 * bookmarks (allowWatchBookmarks cannot be passed), so after a quiet period
 * its resourceVersion is old and a reconnect ends in 410 and a full relist; a
 * failed watch or list stops it for good (the caller must restart it) and a
 * stream the server closes is reopened at once, with no backoff; an ERROR
 * event other than 410 is dropped without a word; and its list items come
 * from the typed API (model classes) while watch events are plain JSON. This
 * reflector uses the client's KubeConfig and Watch and adds what is missing.
 *
 * Invariants:
 *  - the handler sees objects in the server's order; after a relist it sees
 *    the difference between what it knew and the list (deletions included),
 *    never a gap;
 *  - a reconnect resumes from the resourceVersion of the last event or
 *    bookmark delivered, so nothing is missed and nothing is listed again;
 *  - every failure waits on the shared jittered backoff, reset by progress.
 */
import { Backoff, silentLogger, sleep, type Logger } from '@weft/common';
import type { KubeClient, WatchHandle } from './client.js';
import { KubernetesApiError } from './errors.js';
import type { KubeList, KubeObject, KubeStatus, KubeWatchEvent } from './types.js';

export interface ReflectorHandler {
  /** An object appeared or changed, or went away (after a relist only its metadata name and namespace are known). */
  onEvent(type: 'upsert' | 'delete', object: KubeObject): void;
  /** A (re)list has been delivered in full. */
  onSynced?(): void;
}

export interface ReflectorOptions {
  logger?: Logger;
  backoff?: Backoff;
  /** Asked of the server per watch (it closes the stream then, and the reflector reopens it). Default 300. */
  watchTimeoutSeconds?: number;
  /** A stream silent this long past its timeout is taken as dead (half-open connection). Default 60 s. */
  silenceGraceMs?: number;
  /** Objects per list page. Default 500. */
  pageSize?: number;
}

export type ReflectorState = 'idle' | 'listing' | 'watching' | 'reconnecting' | 'closed';

const ALLOWED_FROM: Record<ReflectorState, readonly ReflectorState[]> = {
  idle: [],
  listing: ['idle', 'watching', 'reconnecting'],
  watching: ['listing', 'reconnecting'],
  reconnecting: ['watching', 'listing'],
  closed: ['idle', 'listing', 'watching', 'reconnecting'],
};

/** How one watch stream ended. */
type Outcome = { kind: 'gone' } | { kind: 'ended'; progressed: boolean } | { kind: 'failed'; err: Error; progressed: boolean } | { kind: 'stopped' };

export class Reflector {
  private _state: ReflectorState = 'idle';
  /** namespace/name -> resourceVersion of every object the handler has been told exists. */
  private readonly known = new Map<string, string>();
  private rv = '';
  private readonly abort = new AbortController();
  private readonly log: Logger;
  private readonly backoff: Backoff;
  private readonly timeoutSeconds: number;
  private readonly silenceGraceMs: number;
  private readonly pageSize: number;
  private running: Promise<void> | undefined;
  private stream: WatchHandle | undefined;
  private syncedOnce = false;
  private readonly syncedWaiters: Array<() => void> = [];
  /** Counters for status and tests. */
  readonly stats = { lists: 0, watches: 0, events: 0, bookmarks: 0, expired: 0, failures: 0 };

  constructor(
    private readonly client: KubeClient,
    readonly path: string,
    private readonly handler: ReflectorHandler,
    options: ReflectorOptions = {},
  ) {
    this.log = (options.logger ?? silentLogger()).child({ path });
    this.backoff = options.backoff ?? new Backoff({ initialMs: 200, maxMs: 10_000 });
    this.timeoutSeconds = options.watchTimeoutSeconds ?? 300;
    this.silenceGraceMs = options.silenceGraceMs ?? 60_000;
    this.pageSize = options.pageSize ?? 500;
  }

  get state(): ReflectorState {
    return this._state;
  }

  /** The resourceVersion up to which the handler has seen everything ('' before the first list). */
  get resourceVersion(): string {
    return this.rv;
  }

  get synced(): boolean {
    return this.syncedOnce;
  }

  start(): this {
    if (this._state !== 'idle') return this;
    this.running = this.run().catch((err: Error) => {
      if (this._state !== 'closed') this.log.error({ err: err.message }, 'reflector stopped by an unexpected error');
    });
    return this;
  }

  /** Resolves once the first list has been delivered. */
  waitSynced(): Promise<void> {
    if (this.syncedOnce) return Promise.resolve();
    return new Promise((resolve) => this.syncedWaiters.push(resolve));
  }

  async stop(): Promise<void> {
    if (this._state === 'closed') return;
    this.transition('closed', 'stopped');
    this.abort.abort();
    this.stream?.abort();
    await this.running;
  }

  private transition(to: ReflectorState, cause: string): void {
    if (this._state === to) return;
    if (!ALLOWED_FROM[to].includes(this._state)) throw new Error(`reflector: no transition ${this._state} -> ${to}`);
    this.log.debug({ from: this._state, to, cause, resourceVersion: this.rv }, 'reflector state');
    this._state = to;
  }

  private get closed(): boolean {
    return this._state === 'closed';
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      if (this.rv === '') {
        this.transition('listing', this.stats.lists === 0 ? 'start' : 'relist');
        if (!(await this.list())) {
          await this.pause();
          continue;
        }
      }
      this.transition('watching', 'watch');
      const outcome = await this.watchOnce();
      if (outcome.kind === 'stopped' || this.closed) return;
      if (outcome.kind === 'gone') {
        this.stats.expired++;
        this.log.info({ resourceVersion: this.rv }, 'watch expired (410 Gone): relisting');
        this.rv = '';
        continue;
      }
      this.transition('reconnecting', outcome.kind);
      if (outcome.progressed) this.backoff.reset();
      if (outcome.kind === 'failed') {
        this.stats.failures++;
        this.log.warn({ err: outcome.err.message, code: (outcome.err as KubernetesApiError).code, resourceVersion: this.rv }, 'watch failed; resuming');
      }
      // A stream that brought nothing (closed at once, or refused) waits before the next try.
      if (!outcome.progressed) await this.pause();
    }
  }

  private async pause(): Promise<void> {
    await sleep(this.backoff.next(), this.abort.signal, 'Reflector backoff').catch(() => undefined);
  }

  /** Lists every page, then reports the difference to the handler. False when it failed (logged). */
  private async list(): Promise<boolean> {
    this.stats.lists++;
    const items: KubeObject[] = [];
    let rv = '';
    let cont: string | undefined;
    try {
      do {
        const page = await this.client.request<KubeList>(`list ${this.path}`, 'GET', this.path, { query: { limit: this.pageSize, continue: cont }, signal: this.abort.signal });
        items.push(...(page.items ?? []));
        rv = page.metadata?.resourceVersion ?? '';
        cont = page.metadata?.continue || undefined;
      } while (cont !== undefined && !this.closed);
    } catch (err) {
      // An expired continue token (410) just means: list again from the start.
      if (!this.closed) this.log.warn({ err: (err as Error).message, code: (err as KubernetesApiError).code }, 'list failed; retrying');
      return false;
    }
    if (this.closed) return false;
    if (rv === '') {
      this.log.warn('list answer has no metadata.resourceVersion; retrying');
      return false;
    }
    const seen = new Set<string>();
    for (const obj of items) {
      const key = objectKey(obj);
      seen.add(key);
      const version = obj.metadata?.resourceVersion ?? '';
      if (this.known.get(key) === version && version !== '') continue;
      this.known.set(key, version);
      this.deliver('upsert', obj);
    }
    for (const key of [...this.known.keys()]) {
      if (seen.has(key)) continue;
      this.known.delete(key);
      const [namespace, name] = splitKey(key);
      this.deliver('delete', { metadata: namespace === '' ? { name } : { name, namespace } });
    }
    this.rv = rv;
    this.handler.onSynced?.();
    if (!this.syncedOnce) {
      this.syncedOnce = true;
      this.syncedWaiters.splice(0).forEach((w) => w());
    }
    return true;
  }

  /** One watch stream from this.rv until it ends, fails, expires or the reflector stops. */
  private watchOnce(): Promise<Outcome> {
    this.stats.watches++;
    return new Promise<Outcome>((resolve) => {
      let progressed = false;
      let settled = false;
      let silence: NodeJS.Timeout | undefined;
      const finish = (o: Outcome): void => {
        if (settled) return;
        settled = true;
        clearTimeout(silence);
        this.stream?.abort();
        this.stream = undefined;
        this.abort.signal.removeEventListener('abort', onStop);
        resolve(o);
      };
      const onStop = (): void => finish({ kind: 'stopped' });
      this.abort.signal.addEventListener('abort', onStop, { once: true });
      const armSilence = (): void => {
        clearTimeout(silence);
        silence = setTimeout(() => finish({ kind: 'failed', err: new Error(`watch silent for ${this.timeoutSeconds} s plus ${this.silenceGraceMs} ms`), progressed }), this.timeoutSeconds * 1000 + this.silenceGraceMs);
        silence.unref();
      };
      const onEvent = (e: KubeWatchEvent): void => {
        if (settled) return;
        armSilence();
        switch (e.type) {
          case 'ADDED':
          case 'MODIFIED':
          case 'DELETED': {
            const obj = e.object;
            const key = objectKey(obj);
            if (e.type === 'DELETED') this.known.delete(key);
            else this.known.set(key, obj.metadata?.resourceVersion ?? '');
            this.stats.events++;
            this.deliver(e.type === 'DELETED' ? 'delete' : 'upsert', obj);
            break;
          }
          case 'BOOKMARK':
            this.stats.bookmarks++;
            break;
          case 'ERROR': {
            const s = e.object as KubeStatus;
            if (s.code === 410) return finish({ kind: 'gone' });
            return finish({ kind: 'failed', err: new KubernetesApiError(`watch ${this.path}`, s.code ?? 0, s.reason ?? '', s.message ?? ''), progressed });
          }
          default:
            this.log.warn({ type: (e as { type: unknown }).type }, 'unknown watch event type; ignored');
            return;
        }
        const version = e.object?.metadata?.resourceVersion;
        if (version) {
          this.rv = version;
          progressed = true;
        }
      };
      const onDone = (err: KubernetesApiError | undefined): void => {
        if (!err) return finish({ kind: 'ended', progressed });
        if (err.status === 410) return finish({ kind: 'gone' });
        finish({ kind: 'failed', err, progressed });
      };
      armSilence();
      this.client
        .watch(this.path, { allowWatchBookmarks: true, resourceVersion: this.rv, timeoutSeconds: this.timeoutSeconds }, onEvent, onDone)
        .then((handle) => {
          if (settled) handle.abort();
          else this.stream = handle;
        })
        .catch((err: Error) => finish({ kind: 'failed', err, progressed }));
    });
  }

  /** A handler that throws loses that one notification (logged), never the stream or its order. */
  private deliver(type: 'upsert' | 'delete', obj: KubeObject): void {
    try {
      this.handler.onEvent(type, obj);
    } catch (err) {
      this.log.error({ err: (err as Error).message, name: obj.metadata?.name, namespace: obj.metadata?.namespace }, 'reflector handler failed');
    }
  }
}

function objectKey(obj: KubeObject): string {
  return `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
}

function splitKey(key: string): [string, string] {
  const i = key.indexOf('/');
  return [key.slice(0, i), key.slice(i + 1)];
}
