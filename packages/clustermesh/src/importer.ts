/**
 * Importer: one per remote cluster. Connects to the remote's
 * clustermesh-apiserver over mTLS, receives each kind's snapshot and changes,
 * validates every record and writes the accepted ones to the local etcd under
 * weft/mesh/v1/<remote>/<kind>/, where this cluster's agents read them.
 *
 *   connecting -> syncing -> synced --(stream broke)--> connecting (backoff)
 *
 * Entries of a kind that the remote no longer has are deleted only once a
 * fresh snapshot of that kind is complete, so a reconnect never makes
 * entries flap. While disconnected the last state is kept (for staleAfter),
 * then removed.
 */
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { Backoff, sleep, type Logger } from '@weft/common';
import { KvstoreRequestError, op, type KvClient, type TxnOp } from '@weft/kvstore';
import { parseCidr, type Cidr } from '@weft/policy';
import { MESH_KINDS, MESH_ROOT, type MeshKind, type RemoteConfig, type SyncBatch } from './types.js';
import { checkRecord } from './validate.js';
import { KEEPALIVE, MAX_MESSAGE_BYTES, MeshClient } from './wire.js';

const PAUSE_AT = 32;
const WRITES_IN_FLIGHT = 8;
const RESUME_AT = 8;

export type LinkState = 'connecting' | 'syncing' | 'synced' | 'disconnected' | 'stopped';

export interface RemoteStatus {
  name: string;
  id: number;
  address: string;
  state: LinkState;
  synced: Record<MeshKind, boolean>;
  counts: Record<MeshKind, number>;
  rejected: number;
  lastRejection?: string;
  lastError?: string;
  connectedAt?: string;
  disconnectedAt?: string;
  /** Milliseconds from connect to every kind synced, for the last connect. */
  syncMs?: number;
}

export class Importer {
  readonly status: RemoteStatus;
  private client: grpc.Client | undefined;
  private call: grpc.ClientReadableStream<SyncBatch> | undefined;
  private readonly backoff = new Backoff({ initialMs: 200, maxMs: 5000 });
  private stopped = false;
  private seen = new Map<MeshKind, Set<string>>();
  private queue: Promise<void> = Promise.resolve();
  private staleTimer: NodeJS.Timeout | undefined;
  private connectedAtMs = 0;
  /** Batches received and not yet written. */
  private pending = 0;
  /** An expired or not yet valid certificate of ours, said in every error until fixed. */
  private certProblem: string | undefined;

  constructor(
    readonly remote: RemoteConfig,
    private readonly local: { cluster: string; kv: KvClient; podCidrs: () => string[]; staleAfterMs: number; maxTxnOps: number },
    private readonly log: Logger,
  ) {
    const counts = Object.fromEntries(MESH_KINDS.map((k) => [k, 0])) as Record<MeshKind, number>;
    const synced = Object.fromEntries(MESH_KINDS.map((k) => [k, false])) as Record<MeshKind, boolean>;
    this.status = { name: remote.name, id: remote.id, address: remote.address, state: 'connecting', synced, counts, rejected: 0 };
  }

  private prefix(kind: MeshKind): string {
    return `${MESH_ROOT}${this.remote.name}/${kind}/`;
  }

  start(): void {
    this.certProblem = certificateProblem(this.remote.cert, 'our client certificate') ?? certificateProblem(this.remote.ca, `${this.remote.name}'s CA certificate`);
    if (this.certProblem) {
      this.status.lastError = this.certProblem;
      this.log.warn({ peer: this.remote.name, problem: this.certProblem }, 'clustermesh certificate problem; the remote will refuse us');
    }
    const creds = grpc.credentials.createSsl(Buffer.from(this.remote.ca), Buffer.from(this.remote.key), Buffer.from(this.remote.cert));
    this.client = new MeshClient(this.remote.address, creds, { 'grpc.max_receive_message_length': MAX_MESSAGE_BYTES, ...KEEPALIVE });
    this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.staleTimer);
    this.transition('stopped', 'stopped');
    this.call?.cancel();
    this.client?.close();
    await this.queue;
  }

  private transition(to: LinkState, cause: string): void {
    const from = this.status.state;
    if (from === to) return;
    this.status.state = to;
    this.log.info({ peer: this.remote.name, from, to, cause }, 'clustermesh link state');
  }

  private connect(): void {
    if (this.stopped) return;
    this.transition('connecting', 'dialing');
    this.seen = new Map(MESH_KINDS.map((k) => [k, new Set<string>()]));
    for (const k of MESH_KINDS) this.status.synced[k] = false;
    this.connectedAtMs = Date.now();
    const call = (this.client as unknown as { sync(req: unknown): grpc.ClientReadableStream<SyncBatch> }).sync({ cluster: this.local.cluster, kinds: MESH_KINDS });
    this.call = call;
    call.on('data', (batch: SyncBatch) => {
      if (this.status.state === 'connecting') {
        this.transition('syncing', 'receiving snapshot');
        this.status.connectedAt = new Date().toISOString();
        clearTimeout(this.staleTimer);
        this.backoff.reset();
      }
      // Backpressure: a slow local etcd pauses the stream instead of buffering without bound.
      if (++this.pending >= PAUSE_AT) call.pause();
      this.queue = this.queue.then(() => this.applyUntilWritten(batch, call)).finally(() => {
        if (--this.pending <= RESUME_AT) call.resume();
      });
    });
    call.on('error', (err: Error) => {
      if (this.stopped) return;
      this.status.lastError = this.certProblem ? `${this.certProblem} (${err.message})` : err.message;
    });
    call.on('close', () => {
      if (this.stopped || this.call !== call) return;
      this.status.disconnectedAt = new Date().toISOString();
      this.transition('disconnected', this.status.lastError ?? 'stream closed');
      this.scheduleStaleRemoval();
      setTimeout(() => this.connect(), this.backoff.next()).unref();
    });
  }

  /**
   * Validates a batch once, then writes it, retrying while the local etcd is
   * slow or away: the writes are idempotent, and dropping the stream instead
   * would make the remote resend its whole snapshot (a reconnect storm under
   * load). A request etcd rejects outright is not retried: the link restarts
   * and status says why.
   */
  private async applyUntilWritten(batch: SyncBatch, call: grpc.ClientReadableStream<SyncBatch>): Promise<void> {
    if (this.stopped || this.call !== call || !MESH_KINDS.includes(batch.kind)) return;
    const ops = this.validate(batch);
    const backoff = new Backoff({ initialMs: 200, maxMs: 5000 });
    for (;;) {
      if (this.stopped || this.call !== call) return;
      try {
        await this.write(batch, ops);
        return;
      } catch (err) {
        const permanent = err instanceof KvstoreRequestError;
        this.status.lastError = `Cannot write remote state to etcd${permanent ? '' : ' (retrying)'}: ${(err as Error).message}`;
        this.log.warn({ peer: this.remote.name, kind: batch.kind, err: (err as Error).message }, permanent ? 'import write rejected; restarting the link' : 'import write failed; retrying');
        if (permanent) return void call.cancel();
        await sleep(backoff.next());
      }
    }
  }

  private localCidrs(): Cidr[] {
    return this.local.podCidrs().map((c) => parseCidr(c)).filter((c): c is Cidr => typeof c !== 'string');
  }

  /** Checks every record of a batch (rejects are counted once) and returns the writes it needs. */
  private validate(batch: SyncBatch): TxnOp[] {
    const kind = batch.kind;
    const cidrs = this.localCidrs();
    const ops: TxnOp[] = [];
    const seen = this.seen.get(kind)!;
    for (const [key, value] of batch.upserts ?? []) {
      const problem = checkRecord(kind, key, value, this.remote, cidrs);
      if (problem) {
        this.status.rejected++;
        this.status.lastRejection = `${kind}/${key}: ${problem}`;
        this.log.warn({ peer: this.remote.name, kind, key, reason: problem }, 'rejected record from remote cluster');
        continue;
      }
      seen.add(key);
      ops.push(op.put(this.prefix(kind) + key, value));
    }
    for (const key of batch.deletes ?? []) {
      if (typeof key !== 'string' || key.includes('/')) continue;
      seen.delete(key);
      ops.push(op.delete(this.prefix(kind) + key));
    }
    return ops;
  }

  private async write(batch: SyncBatch, ops: TxnOp[]): Promise<void> {
    const kind = batch.kind;
    const seen = this.seen.get(kind)!;
    await this.writeChunks(`import ${kind} from ${this.remote.name}`, ops);
    if (batch.synced) {
      // The snapshot is complete: only now remove what the remote no longer has.
      const { keys } = await this.local.kv.listKeys(this.prefix(kind));
      const stale = keys.filter((k) => !seen.has(k.slice(this.prefix(kind).length))).map((k) => op.delete(k));
      await this.writeChunks(`prune ${kind} of ${this.remote.name}`, stale);
      await this.local.kv.put(`${MESH_ROOT}${this.remote.name}/synced/${kind}`, JSON.stringify({ at: new Date().toISOString() }));
      this.status.synced[kind] = true;
      if (MESH_KINDS.every((k) => this.status.synced[k])) {
        this.status.syncMs = Date.now() - this.connectedAtMs;
        delete this.status.lastError;
        this.transition('synced', `snapshot complete in ${this.status.syncMs} ms`);
      }
    }
    this.status.counts[kind] = seen.size;
  }

  /**
   * Writes independent operations (distinct keys) in transactions of at most
   * maxTxnOps (etcd's --max-txn-ops, 128 by default), a few in flight at once
   * so etcd can batch them into fewer disk syncs.
   */
  private async writeChunks(what: string, ops: TxnOp[]): Promise<void> {
    const size = this.local.maxTxnOps;
    const chunks: TxnOp[][] = [];
    for (let i = 0; i < ops.length; i += size) chunks.push(ops.slice(i, i + size));
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < chunks.length) {
        const chunk = chunks[next++]!;
        await this.local.kv.txn(what, { compare: [], success: chunk });
      }
    };
    await Promise.all(Array.from({ length: Math.min(WRITES_IN_FLIGHT, chunks.length) }, worker));
  }

  /** A remote gone for longer than staleAfter: its state goes too (its pods are unreachable anyway). */
  private scheduleStaleRemoval(): void {
    clearTimeout(this.staleTimer);
    this.staleTimer = setTimeout(() => {
      if (this.status.state === 'synced' || this.stopped) return;
      this.log.warn({ peer: this.remote.name }, 'remote unreachable for too long; removing its state');
      void this.local.kv.deletePrefix(`${MESH_ROOT}${this.remote.name}/`).catch(() => undefined);
    }, this.local.staleAfterMs);
    this.staleTimer.unref();
  }
}

/** Why a PEM certificate cannot be used now, or undefined. */
function certificateProblem(pem: string, what: string): string | undefined {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch (err) {
    return `${what} does not parse: ${(err as Error).message}`;
  }
  const now = Date.now();
  if (Date.parse(cert.validTo) < now) return `${what} (${cert.subject.replace(/\n/g, ', ')}) expired on ${new Date(cert.validTo).toISOString()}`;
  if (Date.parse(cert.validFrom) > now) return `${what} (${cert.subject.replace(/\n/g, ', ')}) is not valid before ${new Date(cert.validFrom).toISOString()}`;
  return undefined;
}
