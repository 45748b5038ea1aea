/**
 * A Session is one etcd lease kept alive in the background. Keys written with
 * the session's lease (per-node identity references, lock keys, heartbeats)
 * vanish when the owner dies or is partitioned for longer than the TTL.
 *
 * Invariant: once a session leaves `active` it never returns; a caller that
 * needs keys bound to a live lease creates a new session and rewrites them.
 * `signal` aborts when the session is lost or closed, so work tied to the
 * session can be cancelled with the standard AbortSignal plumbing.
 */
import { EventEmitter } from 'node:events';
import type { Lease } from 'etcd3';
import { silentLogger, type Logger } from '@weft/common';
import type { KvClient } from './client.js';
import { SessionLostError } from './errors.js';
import type { SessionState } from './types.js';

export interface SessionOptions {
  /** Lease TTL in seconds. Default 15. */
  ttlSeconds?: number;
  signal?: AbortSignal;
  logger?: Logger;
}

const ALLOWED_FROM: Record<SessionState, readonly SessionState[]> = {
  granting: [],
  active: ['granting'],
  lost: ['granting', 'active'],
  closed: ['granting', 'active', 'lost'],
};

export interface Session {
  on(event: 'lost', listener: (err: SessionLostError) => void): this;
  on(event: 'state', listener: (state: SessionState, cause: string) => void): this;
}

export class Session extends EventEmitter {
  readonly ttlSeconds: number;
  private _state: SessionState = 'granting';
  private _leaseId = '0';
  private readonly abort = new AbortController();
  private readonly log: Logger;

  private constructor(
    private readonly lease: Lease,
    ttlSeconds: number,
    logger: Logger,
  ) {
    super();
    this.ttlSeconds = ttlSeconds;
    this.log = logger;
  }

  /** Grants a lease and starts keeping it alive. Rejects with a typed error if etcd is unavailable. */
  static async create(client: KvClient, options: SessionOptions = {}): Promise<Session> {
    const ttl = options.ttlSeconds ?? 15;
    // A fresh etcd3 Lease per attempt: a Lease whose grant failed stays failed.
    const { lease, id } = await client.call(
      'grant a session lease',
      async () => {
        const lease = client.etcd.lease(ttl, { autoKeepAlive: true });
        try {
          return { lease, id: await lease.grant() };
        } catch (err) {
          lease.release();
          throw err;
        }
      },
      options.signal ? { signal: options.signal } : {},
    );
    const session = new Session(lease, ttl, options.logger ?? silentLogger());
    session._leaseId = id;
    session.watchKeepAlive();
    session.transition('active', `lease ${id} granted with ttl ${ttl}s`);
    return session;
  }

  /**
   * etcd3 declares a lease lost only after twice its TTL without a keep-alive;
   * by then etcd has long deleted its keys. We tell callers as soon as the TTL
   * has passed without a successful keep-alive, which is when etcd may expire it.
   */
  private watchKeepAlive(): void {
    let last = Date.now();
    this.lease.on('keepaliveSucceeded', () => {
      last = Date.now();
    });
    this.lease.on('lost', (err: Error) => this.onLost(`keep-alive failed: ${err.message}`, err));
    const timer = setInterval(() => {
      if (this._state !== 'active') return clearInterval(timer);
      if (Date.now() - last > this.ttlSeconds * 1000) this.onLost(`no keep-alive answered for ${this.ttlSeconds}s`, undefined);
    }, Math.max(100, (this.ttlSeconds * 1000) / 6));
    timer.unref();
  }

  get state(): SessionState {
    return this._state;
  }

  /** The lease id, as etcd's decimal int64 string. */
  get leaseId(): string {
    return this._leaseId;
  }

  /** Aborted when the session is lost or closed. */
  get signal(): AbortSignal {
    return this.abort.signal;
  }

  get isActive(): boolean {
    return this._state === 'active';
  }

  /**
   * Stops keeping the lease alive without revoking it: its keys vanish when the
   * TTL runs out, as if this process had died (a crash, for tests and drills).
   */
  abandon(): void {
    if (this._state === 'closed') return;
    this.transition('closed', 'abandoned by owner');
    this.lease.release();
  }

  /** Revokes the lease (its keys vanish at once) and stops keeping it alive. */
  async close(): Promise<void> {
    if (this._state === 'closed') return;
    const wasActive = this._state === 'active';
    this.transition('closed', 'closed by owner');
    if (wasActive) {
      try {
        await this.lease.revoke();
      } catch (err) {
        // The lease will expire on its own after the TTL; say so rather than fail the close.
        this.log.warn({ lease: this._leaseId, err: (err as Error).message }, 'could not revoke lease; it will expire after its ttl');
      }
    } else {
      this.lease.release();
    }
  }

  private onLost(reason: string, cause: unknown): void {
    if (this._state === 'lost' || this._state === 'closed') return;
    this.transition('lost', reason);
    this.lease.release();
    this.emit('lost', new SessionLostError(this._leaseId, reason, { cause }));
  }

  private transition(to: SessionState, cause: string): void {
    const from = this._state;
    if (!ALLOWED_FROM[to].includes(from)) {
      this.log.error({ from, to, cause }, 'illegal session state transition ignored');
      return;
    }
    this._state = to;
    this.log.info({ lease: this._leaseId, from, to, cause }, 'session state');
    if (to === 'lost' || to === 'closed') this.abort.abort(new SessionLostError(this._leaseId, cause));
    this.emit('state', to, cause);
  }
}
