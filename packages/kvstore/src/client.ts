/**
 * KvClient: Weft's one door to a cluster's etcd. A thin, typed layer over the
 * etcd3 gRPC client that
 *  - turns every failure into a typed error (unavailable -> retryable),
 *  - retries transient failures with the shared backoff under a caller-chosen
 *    policy (etcd3's own retry and circuit breaker are disabled so there is
 *    exactly one retry loop, ours),
 *  - exposes compare-and-swap transactions in a compact form.
 * Watches, sessions and locks are built on it in their own modules.
 */
import { Etcd3, isRecoverableError, type IRequestOp, type IKeyValue, type ICompare } from 'etcd3';
import { noop } from 'cockatiel';
import { retry, silentLogger, throwIfAborted, type Logger, type RetryPolicy } from '@weft/common';
import { KvstoreClosedError, KvstorePermissionError, KvstoreRequestError, KvstoreUnavailableError } from './errors.js';
import type { Compare, KeyValue, ListResult, TxnOp, TxnResult } from './types.js';

export interface KvClientOptions {
  /** etcd client URLs or host:port pairs. */
  endpoints: string[];
  /** mTLS material, PEM. */
  tls?: { ca: Buffer; cert?: Buffer; key?: Buffer };
  /** Deadline of one unary request. Default 5000 ms. */
  requestTimeoutMs?: number;
  /** How transient failures are retried. Default: 8 attempts, 50 ms..2 s. */
  retry?: RetryPolicy;
  logger?: Logger;
}

export interface CallOptions {
  signal?: AbortSignal;
  /** Overrides the client's retry policy for this call. */
  retry?: RetryPolicy;
}

const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 8, initialMs: 50, maxMs: 2000 };

/** The smallest key greater than every key starting with `prefix`. */
export function prefixEnd(prefix: string | Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

export function toKeyValue(kv: IKeyValue): KeyValue {
  return {
    key: kv.key.toString(),
    value: kv.value,
    createRevision: Number(kv.create_revision),
    modRevision: Number(kv.mod_revision),
    lease: kv.lease,
  };
}

const COMPARE_RESULT = { '==': 'Equal', '!=': 'NotEqual', '<': 'Less', '>': 'Greater' } as const;
const COMPARE_TARGET = { value: 'Value', mod: 'Mod', create: 'Create', version: 'Version' } as const;

function toCompare(c: Compare): ICompare {
  const out: ICompare = { key: Buffer.from(c.key), result: COMPARE_RESULT[c.op], target: COMPARE_TARGET[c.target] };
  if (c.target === 'value') out.value = Buffer.from(c.value);
  else if (c.target === 'mod') out.mod_revision = c.value;
  else if (c.target === 'create') out.create_revision = c.value;
  else out.version = c.value;
  return out;
}

function toRequestOp(op: TxnOp): IRequestOp {
  switch (op.type) {
    case 'put':
      return { request_put: { key: Buffer.from(op.key), value: Buffer.from(op.value), lease: op.lease ?? '0' } };
    case 'delete':
      return { request_delete_range: op.prefix ? { key: Buffer.from(op.key), range_end: prefixEnd(op.key) } : { key: Buffer.from(op.key) } };
    case 'get':
      return { request_range: op.prefix ? { key: Buffer.from(op.key), range_end: prefixEnd(op.key) } : { key: Buffer.from(op.key) } };
  }
}

/** Compare-term builders, so call sites read like the condition they state. */
export const cmp = {
  absent: (key: string): Compare => ({ key, target: 'create', op: '==', value: 0 }),
  present: (key: string): Compare => ({ key, target: 'create', op: '>', value: 0 }),
  valueIs: (key: string, value: string | Buffer): Compare => ({ key, target: 'value', op: '==', value }),
  modRevisionIs: (key: string, revision: number): Compare => ({ key, target: 'mod', op: '==', value: revision }),
};

/** Operation builders for transaction branches. */
export const op = {
  put: (key: string, value: string | Buffer, lease?: string): TxnOp => (lease ? { type: 'put', key, value, lease } : { type: 'put', key, value }),
  delete: (key: string): TxnOp => ({ type: 'delete', key }),
  deletePrefix: (key: string): TxnOp => ({ type: 'delete', key, prefix: true }),
  get: (key: string): TxnOp => ({ type: 'get', key }),
  getPrefix: (key: string): TxnOp => ({ type: 'get', key, prefix: true }),
};

export class KvClient {
  readonly endpoints: readonly string[];
  /** The underlying etcd3 client, for the kvstore's own watch, lease and lock modules. */
  readonly etcd: Etcd3;
  private readonly retryPolicy: RetryPolicy;
  private readonly log: Logger;
  private closed = false;

  constructor(options: KvClientOptions) {
    if (options.endpoints.length === 0) throw new KvstoreRequestError('connect', { cause: new Error('no etcd endpoints given') });
    this.endpoints = options.endpoints;
    this.retryPolicy = options.retry ?? DEFAULT_RETRY;
    this.log = options.logger ?? silentLogger();
    const timeout = options.requestTimeoutMs ?? 5000;
    this.etcd = new Etcd3({
      hosts: options.endpoints,
      ...(options.tls ? { credentials: { rootCertificate: options.tls.ca, privateKey: options.tls.key, certChain: options.tls.cert } } : {}),
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
      // One retry loop (ours): etcd3's global retry and per-host circuit breaker
      // would otherwise stack delays and fail fast for seconds after etcd returns.
      faultHandling: { global: noop, host: () => noop },
      grpcOptions: {
        'grpc.keepalive_time_ms': 10_000,
        'grpc.keepalive_timeout_ms': 5_000,
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 2_000,
        // Listing a large prefix (100k endpoints of a remote cluster) exceeds gRPC's 4 MiB default.
        'grpc.max_receive_message_length': 512 << 20,
      },
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Runs one etcd request with the retry policy, translating errors. Every
   * public method goes through here.
   */
  async call<T>(action: string, fn: () => Promise<T>, options: CallOptions = {}): Promise<T> {
    if (this.closed) throw new KvstoreClosedError(action);
    throwIfAborted(options.signal, action);
    return retry(
      async () => {
        if (this.closed) throw new KvstoreClosedError(action);
        try {
          return await fn();
        } catch (err) {
          throw this.translate(action, err);
        }
      },
      {
        policy: options.retry ?? this.retryPolicy,
        ...(options.signal ? { signal: options.signal } : {}),
        action,
        isRetryable: (err) => err instanceof KvstoreUnavailableError,
        onRetry: (err, attempt, delayMs) =>
          this.log.debug({ action, attempt, delayMs, err: (err as Error).message }, 'etcd request failed, retrying'),
      },
    );
  }

  /** Maps an etcd3 or gRPC error to a typed kvstore error. */
  translate(action: string, err: unknown): Error {
    if (err instanceof KvstoreUnavailableError || err instanceof KvstoreRequestError || err instanceof KvstoreClosedError || err instanceof KvstorePermissionError) return err;
    if (this.closed) return new KvstoreClosedError(action);
    const e = err as Error & { code?: number; details?: string };
    const text = `${e?.name ?? ''} ${e?.message ?? ''}`;
    if (/permission denied/i.test(text)) return new KvstorePermissionError(action, { cause: err });
    if (
      (e instanceof Error && isRecoverableError(e)) ||
      /Unavailable|DeadlineExceeded|Deadline exceeded|ECONNREFUSED|No connection established|BrokenCircuit|ResourceExhausted|connect failed|leader changed|no leader|timed out/i.test(text) ||
      e?.code === 14 ||
      e?.code === 4
    ) {
      return new KvstoreUnavailableError(action, this.endpoints, { cause: err });
    }
    return new KvstoreRequestError(action, { cause: err });
  }

  async get(key: string, options: CallOptions = {}): Promise<KeyValue | undefined> {
    const res = await this.call(`get key ${key}`, () => this.etcd.kv.range({ key: Buffer.from(key) }), options);
    const kv = res.kvs[0];
    return kv ? toKeyValue(kv) : undefined;
  }

  /** All keys under `prefix`, read at one revision. */
  async list(prefix: string, options: CallOptions = {}): Promise<ListResult> {
    const res = await this.call(
      `list prefix ${prefix}`,
      () => this.etcd.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix) }),
      options,
    );
    return { items: res.kvs.map(toKeyValue), revision: Number(res.header.revision) };
  }

  /** Keys under `prefix` without their values, at one revision. */
  async listKeys(prefix: string, options: CallOptions = {}): Promise<{ keys: string[]; revision: number }> {
    const res = await this.call(
      `list keys under ${prefix}`,
      () => this.etcd.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix), keys_only: true }),
      options,
    );
    return { keys: res.kvs.map((kv) => kv.key.toString()), revision: Number(res.header.revision) };
  }

  /** Number of keys under `prefix`, without transferring them. */
  async count(prefix: string, options: CallOptions = {}): Promise<number> {
    const res = await this.call(
      `count prefix ${prefix}`,
      () => this.etcd.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix), count_only: true }),
      options,
    );
    return Number(res.count);
  }

  async put(key: string, value: string | Buffer, options: CallOptions & { lease?: string } = {}): Promise<number> {
    const res = await this.call(
      `put key ${key}`,
      () => this.etcd.kv.put({ key: Buffer.from(key), value: Buffer.from(value), lease: options.lease ?? '0' }),
      options,
    );
    return Number(res.header.revision);
  }

  /** Deletes one key; returns how many keys went (0 or 1). */
  async delete(key: string, options: CallOptions = {}): Promise<number> {
    const res = await this.call(`delete key ${key}`, () => this.etcd.kv.deleteRange({ key: Buffer.from(key) }), options);
    return Number(res.deleted);
  }

  async deletePrefix(prefix: string, options: CallOptions = {}): Promise<number> {
    const res = await this.call(
      `delete prefix ${prefix}`,
      () => this.etcd.kv.deleteRange({ key: Buffer.from(prefix), range_end: prefixEnd(prefix) }),
      options,
    );
    return Number(res.deleted);
  }

  /**
   * An atomic compare-and-swap: when every `compare` term holds, `success` runs,
   * else `failure`. Nothing of the branch that did not run is applied.
   */
  async txn(
    action: string,
    request: { compare: Compare[]; success: TxnOp[]; failure?: TxnOp[] },
    options: CallOptions = {},
  ): Promise<TxnResult> {
    const req = {
      compare: request.compare.map(toCompare),
      success: request.success.map(toRequestOp),
      failure: (request.failure ?? []).map(toRequestOp),
    };
    const res = await this.call(action, () => this.etcd.kv.txn(req), options);
    const gets: KeyValue[][] = res.responses.map((r) => (r.response_range ? r.response_range.kvs.map(toKeyValue) : []));
    return { succeeded: res.succeeded, revision: Number(res.header.revision), gets };
  }

  /** Compacts the store's history up to `revision` (tests and maintenance). */
  async compact(revision: number, options: CallOptions = {}): Promise<void> {
    await this.call(`compact to revision ${revision}`, () => this.etcd.kv.compact({ revision, physical: true }), options);
  }

  /**
   * The store's current revision; also a cheap health probe. Reads (counts) the one key `weft/`,
   * which every Weft etcd role may read (RBAC: docs/credentials.md).
   */
  async revision(options: CallOptions = {}): Promise<number> {
    const res = await this.call('read the store revision', () => this.etcd.kv.range({ key: Buffer.from('weft/'), count_only: true }), options);
    return Number(res.header.revision);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.etcd.close();
  }
}
