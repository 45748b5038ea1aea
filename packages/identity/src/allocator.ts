/**
 * IdentityAllocator: labels -> numeric identity, the same on every node of a
 * cluster, one per node process.
 *
 * Invariants (proved by the tests against a real etcd):
 *  - two label sets never share an id, one label set never gets two: master
 *    and index are created in one transaction that requires both absent;
 *  - this node's use of an id is a reference key bound to its session lease,
 *    so a dead node's references vanish with its lease;
 *  - repeated local use is a local reference count: no etcd round trip;
 *  - a call either succeeds completely or changes nothing locally; etcd being
 *    down surfaces as KvstoreUnavailableError after the retry policy;
 *  - keys deleted behind our back (a lost lease, a master or index removed by
 *    hand) are restored; if our id was taken meanwhile we move to a new one and
 *    say so with a 'changed' event.
 */
import { EventEmitter } from 'node:events';
import { AbortedError, Backoff, createLogger, sleep, type Logger } from '@weft/common';
import { Session, type KvClient } from '@weft/kvstore';
import type { IdentityBackend, StoreView } from './backend.js';
import { IdentityCache, type IdentityChange } from './cache.js';
import { EtcdIdentityBackend } from './etcd-backend.js';
import {
  AllocatorStoppedError,
  IdentityConflictError,
  IdentityExhaustedError,
  IdentityNotHeldError,
  InvalidLabelError,
} from './errors.js';
import { CLUSTER_LABEL, DEFAULT_SOURCE, LabelFilter, LabelSet, makeLabel } from './labels.js';
import { IdentityLayout } from './layout.js';
import { LOCAL_ID_MAX, LOCAL_ID_MIN, ReservedIdentity, identityRange, inCluster, validateClusterId, type IdentityRange } from './numeric.js';

export interface AllocatorOptions {
  client: KvClient;
  clusterId: number;
  clusterName: string;
  /** This node's name; appears in reference keys. */
  node: string;
  layout?: IdentityLayout;
  /** Storage; defaults to etcd through `client`. */
  backend?: IdentityBackend;
  /** Narrows the local id range (tests of exhaustion). Default 256-65535. */
  localIdMin?: number;
  localIdMax?: number;
  /** TTL of the lease that binds this node's references. Default 15 s. Unused with `session`. */
  sessionTtlSeconds?: number;
  /**
   * A session its caller owns (one lease per agent): references are bound to its lease, and the
   * allocator never creates, renews or closes a session of its own. When it is lost, allocations
   * wait until the owner hands over the next one with useSession(), which writes every reference
   * again under it.
   */
  session?: Session;
  /** Transactions tried per allocation before IdentityConflictError. Default 16. */
  maxAttempts?: number;
  filter?: LabelFilter;
  logger?: Logger;
  random?: () => number;
}

export type LabelsInput = LabelSet | readonly string[] | Record<string, string>;

export interface Allocation {
  id: number;
  labels: LabelSet;
  /** Whether this call created the identity cluster-wide. */
  isNew: boolean;
}

export interface IdentityMove {
  labels: LabelSet;
  oldId: number;
  newId: number;
}

interface LocalRef {
  id: number;
  labels: LabelSet;
  refs: number;
  /** Set while the last reference's key is being deleted: the entry must not be reused. */
  releasing?: boolean;
}

type Plan = { kind: 'claim' | 'create' | 'repairMaster' | 'repairIndex'; id: number };

const NODE_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$/;

/** The reserved identities' label sets, made once: every flow event looks its two identities up. */
const RESERVED_LABELS: ReadonlyMap<number, LabelSet> = new Map(
  (Object.entries(ReservedIdentity) as Array<[keyof typeof ReservedIdentity, number]>).map(([name, id]) => [id, LabelSet.reserved(name)]),
);

export interface IdentityAllocator {
  on(event: 'changed', listener: (move: IdentityMove) => void): this;
  on(event: 'sessionLost', listener: (err: Error) => void): this;
  on(event: 'recovered', listener: (count: number) => void): this;
}

export class IdentityAllocator extends EventEmitter {
  readonly clusterId: number;
  readonly clusterName: string;
  readonly node: string;
  readonly range: IdentityRange;
  readonly cache: IdentityCache;
  private readonly client: KvClient;
  private readonly backend: IdentityBackend;
  private readonly filter: LabelFilter;
  private readonly log: Logger;
  private readonly maxAttempts: number;
  private readonly ttl: number;
  private readonly random: () => number;
  private readonly local = new Map<string, LocalRef>();
  private readonly localById = new Map<number, LocalRef>();
  private readonly queues = new Map<string, Promise<unknown>>();
  /** Ids seen taken by a failed create before the cache learned them. */
  private readonly taken = new Set<number>();
  private readonly abort = new AbortController();
  private state: 'new' | 'running' | 'stopped' = 'new';
  private session: Session | undefined;
  private sessionReady: Promise<Session> | undefined;
  /** The caller's session, when it owns one (AllocatorOptions.session); resolves the wait for the next. */
  private readonly external: boolean;
  private nextSession: ((s: Session) => void) | undefined;
  private readonly clusterLabel;

  constructor(options: AllocatorOptions) {
    super();
    this.clusterId = validateClusterId(options.clusterId, 'create identity allocator');
    this.clusterName = options.clusterName;
    this.clusterLabel = makeLabel(DEFAULT_SOURCE, CLUSTER_LABEL, options.clusterName, ' (cluster name)');
    if (!NODE_RE.test(options.node)) {
      throw new InvalidLabelError(`Cannot create identity allocator: node name ${JSON.stringify(options.node)} must be 1-253 characters of [A-Za-z0-9_.-]`);
    }
    this.node = options.node;
    this.range = identityRange(this.clusterId, options.localIdMin ?? LOCAL_ID_MIN, options.localIdMax ?? LOCAL_ID_MAX);
    this.client = options.client;
    const layout = options.layout ?? new IdentityLayout();
    this.backend = options.backend ?? new EtcdIdentityBackend(options.client, layout);
    this.filter = options.filter ?? new LabelFilter();
    this.log = options.logger ?? createLogger({ component: 'identity-allocator', cluster: options.clusterName, node: options.node });
    this.maxAttempts = options.maxAttempts ?? 16;
    this.ttl = options.sessionTtlSeconds ?? 15;
    this.random = options.random ?? Math.random;
    this.external = options.session !== undefined;
    this.session = options.session;
    this.cache = new IdentityCache(options.client, { layout, clusterId: this.clusterId, logger: this.log });
    this.cache.on('change', (c: IdentityChange) => this.onCacheChange(c));
  }

  /** Grants the session and loads the cache; resolves when allocation can begin. */
  async start(signal?: AbortSignal): Promise<this> {
    if (this.state !== 'new') throw new AllocatorStoppedError('start identity allocator twice');
    this.state = 'running';
    this.cache.start();
    const session = this.session ?? (await Session.create(this.client, { ttlSeconds: this.ttl, ...(signal ? { signal } : {}), logger: this.log }));
    this.adopt(session);
    this.sessionReady = Promise.resolve(session);
    await this.cache.waitSynced(signal);
    this.log.info({ identities: this.cache.size, range: `${this.range.first}-${this.range.last}` }, 'identity allocator started');
    return this;
  }

  /**
   * Stops: by default revokes the session, so this node's references vanish at
   * once (a node leaving gracefully); `release: false` leaves them to expire.
   */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    this.abort.abort(new AllocatorStoppedError('continue'));
    await this.cache.stop();
    if (this.external) return; // its owner ends it
    if (options.release === false) this.session?.abandon();
    else await this.session?.close();
  }

  /**
   * With a session of the caller's (AllocatorOptions.session): the one that follows a lost one.
   * Every reference this node holds is written again under its lease.
   */
  useSession(session: Session): void {
    if (!this.external) throw new AllocatorStoppedError('take a session from outside: this allocator owns its own');
    if (this.state !== 'running' || session === this.session) return;
    this.adopt(session);
    const resolve = this.nextSession;
    this.nextSession = undefined;
    if (resolve) resolve(session);
    else this.sessionReady = Promise.resolve(session);
    void this.reacquireAll();
  }

  /** Number of label sets this node holds references to. */
  get heldCount(): number {
    return this.local.size;
  }

  /** The identities this node holds, with their local reference counts. */
  held(): Array<{ id: number; labels: string; refs: number }> {
    return [...this.local.values()].map((r) => ({ id: r.id, labels: r.labels.key, refs: r.refs }));
  }

  lookupById(id: number): LabelSet | undefined {
    return RESERVED_LABELS.get(id) ?? this.cache.lookupById(id);
  }

  lookupByLabels(input: LabelsInput): number | undefined {
    const labels = this.normalize(input);
    const reserved = labels.reservedName;
    if (reserved) return ReservedIdentity[reserved];
    return this.local.get(labels.key)?.id ?? this.cache.lookupByLabels(labels.key);
  }

  /** Validates labels, applies the identity filter and adds the cluster label. */
  normalize(input: LabelsInput): LabelSet {
    let labels = input instanceof LabelSet ? input : Array.isArray(input) ? LabelSet.parse(input as readonly string[]) : LabelSet.fromMap(input as Record<string, string>);
    if (labels.labels.some((l) => l.source === 'reserved')) {
      if (!labels.reservedName) throw new InvalidLabelError(`Invalid label set "${labels.key}": a reserved label must stand alone`);
      return labels;
    }
    labels = this.filter.apply(labels);
    const cluster = labels.get(CLUSTER_LABEL);
    if (cluster === undefined) return labels.with(this.clusterLabel);
    if (cluster !== this.clusterName) {
      throw new InvalidLabelError(`Invalid label set "${labels.key}": label ${CLUSTER_LABEL}=${cluster} does not match this cluster (${this.clusterName})`);
    }
    return labels;
  }

  /** Returns the identity of `input`, creating it cluster-wide if needed, and takes a reference. */
  async allocate(input: LabelsInput, options: { signal?: AbortSignal } = {}): Promise<Allocation> {
    const labels = this.normalize(input);
    const reserved = labels.reservedName;
    if (reserved) return { id: ReservedIdentity[reserved], labels, isNew: false };
    this.assertRunning('allocate identity');
    const held = this.local.get(labels.key);
    if (held && !held.releasing) {
      held.refs++;
      return { id: held.id, labels: held.labels, isNew: false };
    }
    return this.serialized(labels.key, async () => {
      const again = this.local.get(labels.key);
      if (again) {
        again.refs++;
        return { id: again.id, labels: again.labels, isNew: false };
      }
      const { id, created } = await this.acquire(labels, undefined, options.signal);
      this.hold({ id, labels, refs: 1 });
      return { id, labels, isNew: created };
    });
  }

  /**
   * Drops one local reference; when it was the last, removes this node's
   * reference key. Returns whether the node let go of the identity.
   */
  async release(input: LabelsInput, options: { signal?: AbortSignal } = {}): Promise<boolean> {
    const labels = this.normalize(input);
    if (labels.reservedName) return false;
    this.assertRunning('release identity');
    const held = this.local.get(labels.key);
    if (!held) throw new IdentityNotHeldError(labels.key);
    held.refs = Math.max(0, held.refs - 1);
    if (held.refs > 0) return false;
    return this.serialized(labels.key, async () => {
      const ref = this.local.get(labels.key);
      if (!ref || ref.refs > 0) return false;
      // Remote first: if etcd is down the reference stays held (refs 0) and a
      // later release or allocate finds it consistent.
      ref.releasing = true;
      try {
        await this.backend.release(ref.id, this.node, options.signal);
      } finally {
        ref.releasing = false;
      }
      this.unhold(ref);
      return true;
    });
  }

  private hold(ref: LocalRef): void {
    this.local.set(ref.labels.key, ref);
    this.localById.set(ref.id, ref);
  }

  private unhold(ref: LocalRef): void {
    if (this.local.get(ref.labels.key) === ref) this.local.delete(ref.labels.key);
    if (this.localById.get(ref.id) === ref) this.localById.delete(ref.id);
  }

  /** Runs `fn` after every earlier operation on the same label set. */
  private serialized<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.queues.set(key, tail);
    void tail.then(() => {
      if (this.queues.get(key) === tail) this.queues.delete(key);
    });
    return next;
  }

  /**
   * The transaction loop. Each failed transaction reads back the index and the
   * master it cared about; `decide` turns that view into the next attempt.
   */
  private async acquire(labels: LabelSet, preferId: number | undefined, signal?: AbortSignal): Promise<{ id: number; created: boolean }> {
    const key = labels.key;
    const combined = signal ? AbortSignal.any([signal, this.abort.signal]) : this.abort.signal;
    const known = preferId ?? this.cache.lookupByLabels(key);
    let plan: Plan = known !== undefined ? { kind: 'claim', id: known } : { kind: 'create', id: this.pickFreeId(key) };
    const backoff = new Backoff({ initialMs: 5, maxMs: 200 });
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      const session = await this.activeSession(combined);
      const result = await this.backend[plan.kind](plan.id, key, this.node, session.leaseId, combined);
      if (result.ok) {
        if (plan.kind !== 'claim') this.cache.noteCreated(plan.id, labels);
        if (plan.kind === 'repairMaster' || plan.kind === 'repairIndex') this.log.warn({ identity: plan.id, labels: key, repair: plan.kind }, 'restored identity keys deleted behind our back');
        return { id: plan.id, created: plan.kind === 'create' };
      }
      plan = await this.decide(plan, key, result.view, combined);
      if (attempt > 2) await sleep(backoff.next(), combined, 'Allocate identity');
    }
    throw new IdentityConflictError(key, this.maxAttempts);
  }

  private async decide(tried: Plan, key: string, view: StoreView, signal: AbortSignal): Promise<Plan> {
    const index = view.index;
    if (index) {
      const y = index.id;
      const corrupt = y === undefined || !inCluster(y, this.clusterId);
      const pointsAtOther = y === tried.id && view.master !== undefined && view.master.labels !== key;
      if (corrupt || pointsAtOther) {
        this.log.warn({ labels: key, index: y ?? 'corrupt' }, 'dropping identity index that names no identity of these labels');
        await this.backend.dropIndex(key, index.modRevision, signal);
        return { kind: 'create', id: this.pickFreeId(key) };
      }
      if (y === tried.id) return view.master ? { kind: 'claim', id: y } : { kind: 'repairMaster', id: y };
      return { kind: 'claim', id: y! };
    }
    if (view.master?.labels === key) return { kind: 'repairIndex', id: tried.id };
    if (view.master) this.taken.add(tried.id);
    return { kind: 'create', id: this.pickFreeId(key, tried.kind === 'create' ? undefined : tried.id) };
  }

  /** A random free id of the range (random, so racing nodes rarely pick the same). */
  private pickFreeId(key: string, avoid?: number): number {
    const { first, last } = this.range;
    const size = last - first + 1;
    const free = (id: number): boolean => id !== avoid && !this.cache.has(id) && !this.taken.has(id);
    if (this.cache.size + this.taken.size < size) {
      for (let i = 0; i < 32; i++) {
        const id = first + Math.floor(this.random() * size);
        if (free(id)) return id;
      }
      const start = Math.floor(this.random() * size);
      for (let i = 0; i < size; i++) {
        const id = first + ((start + i) % size);
        if (free(id)) return id;
      }
    }
    throw new IdentityExhaustedError(key, this.clusterId, first, last);
  }

  private assertRunning(action: string): void {
    if (this.state !== 'running') throw new AllocatorStoppedError(action);
  }

  private async activeSession(signal: AbortSignal): Promise<Session> {
    if (signal.aborted) throw this.state === 'stopped' ? new AllocatorStoppedError('allocate identity') : new AbortedError('Allocate identity', { cause: signal.reason });
    if (this.session?.isActive) return this.session;
    if (!this.sessionReady) throw new AllocatorStoppedError('allocate identity');
    return await new Promise<Session>((resolve, reject) => {
      const onAbort = (): void => reject(new AbortedError('Allocate identity', { cause: signal.reason }));
      signal.addEventListener('abort', onAbort, { once: true });
      this.sessionReady!.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  private adopt(session: Session): void {
    this.session = session;
    session.on('lost', (err) => {
      if (this.state !== 'running') return;
      if (session !== this.session) return; // an old one, already replaced
      this.log.warn({ lease: session.leaseId, err: err.message }, 'session lost; references will be restored under a new lease');
      this.emit('sessionLost', err);
      if (this.external) {
        this.sessionReady = new Promise<Session>((resolve) => (this.nextSession = resolve));
        return;
      }
      this.sessionReady = this.renewSession();
      this.sessionReady.catch(() => undefined);
    });
  }

  /** A new lease, then every reference this node holds written again under it. */
  private async renewSession(): Promise<Session> {
    const backoff = new Backoff({ initialMs: 100, maxMs: 5000 });
    for (;;) {
      if (this.state !== 'running') throw new AllocatorStoppedError('renew session');
      try {
        const session = await Session.create(this.client, { ttlSeconds: this.ttl, signal: this.abort.signal, logger: this.log });
        this.adopt(session);
        void this.reacquireAll();
        return session;
      } catch (err) {
        if (this.state !== 'running') throw err;
        this.log.warn({ err: (err as Error).message }, 'cannot create session yet; retrying');
        await sleep(backoff.next(), this.abort.signal, 'Renew session').catch(() => undefined);
      }
    }
  }

  private async reacquireAll(): Promise<void> {
    const refs = [...this.local.values()];
    await Promise.all(refs.map((r) => this.reacquire(r)));
    if (this.state === 'running') this.emit('recovered', refs.length);
  }

  /** Writes a held reference again; moves to a new id if ours was taken meanwhile. */
  private reacquire(ref: LocalRef): Promise<void> {
    return this.serialized(ref.labels.key, async () => {
      if (this.local.get(ref.labels.key) !== ref || this.state !== 'running') return;
      const backoff = new Backoff({ initialMs: 100, maxMs: 5000 });
      for (;;) {
        try {
          const { id } = await this.acquire(ref.labels, ref.id);
          if (id !== ref.id) {
            const oldId = ref.id;
            this.localById.delete(oldId);
            ref.id = id;
            this.localById.set(id, ref);
            this.log.warn({ labels: ref.labels.key, oldId, newId: id }, 'identity was taken while our reference was lost; moved');
            this.emit('changed', { labels: ref.labels, oldId, newId: id } satisfies IdentityMove);
          }
          return;
        } catch (err) {
          if (this.state !== 'running') return;
          this.log.warn({ labels: ref.labels.key, err: (err as Error).message }, 'cannot restore identity reference yet; retrying');
          await sleep(backoff.next(), this.abort.signal).catch(() => undefined);
        }
      }
    });
  }

  private onCacheChange(change: IdentityChange): void {
    this.taken.delete(change.id);
    if (change.type !== 'delete' || this.state !== 'running') return;
    const ref = this.localById.get(change.id);
    if (ref && ref.labels.key === change.labels.key) {
      this.log.warn({ identity: change.id, labels: ref.labels.key }, 'master key of a held identity was deleted; restoring');
      void this.reacquire(ref);
    }
  }
}
