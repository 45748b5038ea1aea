/**
 * Importer: one per remote cluster. Connects to the remote's
 * clustermesh-apiserver over mTLS, receives each kind's snapshot and changes,
 * validates every record and writes the accepted ones to the local etcd under
 * weft/mesh/v1/<remote>/<kind>/, where this cluster's agents read them.
 *
 *   connecting -> syncing -> synced --(stream broke)--> connecting (backoff)
 *
 * Before the records, the importer lists the remote under weft/meshclusters/v1/<remote>
 * ({"id": N}): the cluster id this cluster's configuration gives the remote.
 * Agents read a remote's records only while it is listed, and hold its nodes to it (a tunnel packet's VNI must carry the
 * sending node's cluster id); it comes from our configuration, never from
 * what the remote says.
 *
 * Entries of a kind that the remote no longer has are deleted only once a
 * fresh snapshot of that kind is complete, so a reconnect never makes
 * entries flap. While disconnected the last state is kept (for staleAfter),
 * then removed.
 *
 * The importer keeps the remote's view (what it last said, per kind, within
 * the remote's caps) and writes the part of it that is admitted: each record
 * on its own (validate.ts), then against the rest (@weft/schema's
 * mesh-admission): an endpoint only inside the pod CIDR of its admitted node
 * (held until the node arrives, withdrawn when the node goes or moves), a
 * node only with a pod CIDR and IP that overlap nothing local and nothing
 * another remote holds (RemoteClaims, shared by the apiserver's importers).
 * When local nodes or another remote's claims change, the view is admitted
 * again, so the local etcd always holds exactly the admitted part.
 * Rejections are counted per kind (over-cap ones apart) and the last reason
 * is kept, for `weft clustermesh status`.
 */
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { Backoff, sleep, type Logger } from '@weft/common';
import { MESH_CLUSTERS_PREFIX, remoteEndpointProblem, remoteNodeProblem, type EndpointRecord, type LocalAddresses, type NodeRecord, type RemoteClaims } from '@weft/schema';
import { KvstoreRequestError, op, type KvClient, type TxnOp } from '@weft/kvstore';
import { parseCidr, type Cidr } from '@weft/policy';
import { DEFAULT_LIMITS, MESH_KINDS, MESH_ROOT, type MeshKind, type MeshLimits, type RemoteConfig, type SyncBatch } from './types.js';
import { parseRecord } from './validate.js';
import { KEEPALIVE, MAX_MESSAGE_BYTES, MeshClient } from './wire.js';

const PAUSE_AT = 32;
/** Received and not yet written, in bytes: a remote may send 16 MiB messages, 32 of them would be 512 MiB. */
const PAUSE_AT_BYTES = 64 << 20;
const WRITES_IN_FLIGHT = 8;
const RESUME_AT = 8;

export type LinkState = 'connecting' | 'syncing' | 'synced' | 'disconnected' | 'stopped';

/** Rejections logged per connection before only every 1000th is (a hostile remote must not flood the log). */
const LOGGED_REJECTIONS = 20;

export interface RemoteStatus {
  name: string;
  id: number;
  address: string;
  state: LinkState;
  synced: Record<MeshKind, boolean>;
  /** Records written to the local etcd (admitted), per kind. */
  counts: Record<MeshKind, number>;
  /** Records rejected since start: on their own, against the rest, or over a cap. */
  rejected: number;
  rejectedByKind: Record<MeshKind, number>;
  /** The part of rejectedByKind that was over the remote's cap. */
  overLimit: Record<MeshKind, number>;
  /** The caps in force for this remote. */
  limits: MeshLimits;
  /** Endpoints held, unwritten, until their node is admitted. */
  pendingEndpoints: number;
  /** Bytes of the remote's records held (its view), against limits.bytes. */
  bytes: number;
  lastRejection?: string;
  lastError?: string;
  connectedAt?: string;
  disconnectedAt?: string;
  /** Milliseconds from connect to every kind synced, for the last connect. */
  syncMs?: number;
}

/** What an importer knows of this cluster and of the other remotes. */
export interface ImportContext {
  cluster: string;
  clusterId: number;
  kv: KvClient;
  staleAfterMs: number;
  maxTxnOps: number;
  /** This cluster's addresses now (its nodes from etcd, its configured ranges). */
  local: () => LocalAddresses;
  /** Pod CIDRs and IPs of every remote's admitted nodes, and the allow-lists: shared by the apiserver's importers. */
  claims: RemoteClaims;
  minPodCidrBits: number;
  /** Caps for every remote (the remote's own `limits` override). */
  limits?: Partial<MeshLimits>;
  /** Told when this importer gave up claims: another remote's refused node may fit now. */
  onReleased?: () => void;
  /** Told of every change of the link's state, after it (metrics: failures, reconnects, sync time). */
  onTransition?: (status: Readonly<RemoteStatus>, from: LinkState, to: LinkState) => void;
}

/** One kind of the remote's records. */
class KindState {
  /** What the remote says now (records that passed validate.ts, within the cap). */
  readonly view = new Map<string, string>();
  /** What is in the local etcd: the admitted part of the view. */
  readonly accepted = new Map<string, string>();
  /** Keys of the view refused against the rest, with why. */
  readonly refused = new Map<string, string>();
  /** During a snapshot: keys of the previous view not sent again yet (removed at `synced`). */
  unseen: Set<string> | undefined;

  /** Records of the view counted against the cap (those of a previous connection not sent again do not count). */
  get live(): number {
    return this.view.size - (this.unseen?.size ?? 0);
  }
}

/** The writes one step needs, by etcd key (undefined: delete); a key written twice keeps its last value. */
type Writes = Map<string, string | undefined>;

export class Importer {
  readonly status: RemoteStatus;
  private client: grpc.Client | undefined;
  private call: grpc.ClientReadableStream<SyncBatch> | undefined;
  private readonly backoff = new Backoff({ initialMs: 200, maxMs: 5000 });
  private stopped = false;
  private readonly kinds = Object.fromEntries(MESH_KINDS.map((k) => [k, new KindState()])) as Record<MeshKind, KindState>;
  /** Parsed node and endpoint records of the view. */
  private readonly nodes = new Map<string, NodeRecord>();
  private readonly endpoints = new Map<string, EndpointRecord>();
  /** Node name -> keys of the view's endpoints that name it. */
  private readonly endpointsByNode = new Map<string, Set<string>>();
  /** Admitted nodes, as admitted (their claims are in the shared RemoteClaims). */
  private readonly admittedNodes = new Map<string, NodeRecord>();
  /** Endpoints waiting for their node. */
  private readonly pending = new Set<string>();
  /** Bytes of keys and values in the view (capped by limits.bytes). */
  private viewBytes = 0;
  private readonly allowed: Cidr[] | undefined;
  private readonly limits: MeshLimits;
  private released = false;
  private revalidateQueued = false;
  private logged = 0;
  private queue: Promise<void> = Promise.resolve();
  private staleTimer: NodeJS.Timeout | undefined;
  private connectedAtMs = 0;
  /** Batches received and not yet written. */
  private batchesInFlight = 0;
  private bytesInFlight = 0;
  /** Whether the remote's MESH_CLUSTERS_PREFIX record was written since the last connect. */
  private infoWritten = false;
  /** An expired or not yet valid certificate of ours, said in every error until fixed. */
  private certProblem: string | undefined;

  constructor(
    readonly remote: RemoteConfig,
    private readonly local: ImportContext,
    private readonly log: Logger,
  ) {
    const perKind = <T>(v: T): Record<MeshKind, T> => Object.fromEntries(MESH_KINDS.map((k) => [k, v])) as Record<MeshKind, T>;
    this.limits = { ...DEFAULT_LIMITS, ...local.limits, ...remote.limits };
    this.allowed = remote.podCidrs?.map((c) => parseCidr(c)).filter((c): c is Cidr => typeof c !== 'string');
    this.status = { name: remote.name, id: remote.id, address: remote.address, state: 'connecting', synced: perKind(false), counts: perKind(0), rejected: 0, rejectedByKind: perKind(0), overLimit: perKind(0), limits: { ...this.limits }, pendingEndpoints: 0, bytes: 0 };
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
    this.local.onTransition?.(this.status, from, to);
  }

  private connect(): void {
    if (this.stopped) return;
    this.transition('connecting', 'dialing');
    // A fresh snapshot follows: what it does not repeat goes when its kind is synced.
    for (const k of MESH_KINDS) {
      this.kinds[k].unseen = new Set(this.kinds[k].view.keys());
      this.status.synced[k] = false;
    }
    this.logged = 0;
    this.infoWritten = false;
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
      const bytes = batchBytes(batch);
      this.bytesInFlight += bytes;
      if (++this.batchesInFlight >= PAUSE_AT || this.bytesInFlight >= PAUSE_AT_BYTES) call.pause();
      this.queue = this.queue.then(() => this.applyUntilWritten(batch, call)).finally(() => {
        this.bytesInFlight -= bytes;
        if (--this.batchesInFlight <= RESUME_AT && this.bytesInFlight < PAUSE_AT_BYTES / 4) call.resume();
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
    const ops = this.process(batch);
    const backoff = new Backoff({ initialMs: 200, maxMs: 5000 });
    for (;;) {
      if (this.stopped || this.call !== call) return;
      try {
        await this.commit(batch, ops);
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

  /**
   * Applies a batch to the view and returns the writes that bring the local etcd to the
   * admitted part (rejections are counted here, once).
   */
  private process(batch: SyncBatch): TxnOp[] {
    const kind = batch.kind;
    const st = this.kinds[kind];
    const w: Writes = new Map();
    for (const entry of Array.isArray(batch.upserts) ? batch.upserts : []) {
      const [key, value] = Array.isArray(entry) ? entry : [];
      this.upsert(kind, String(key), value as string, w);
    }
    for (const key of Array.isArray(batch.deletes) ? batch.deletes : []) {
      if (typeof key !== 'string' || key.includes('/')) continue;
      st.unseen?.delete(key);
      this.remove(kind, key, w);
    }
    if (batch.synced && st.unseen) {
      for (const key of st.unseen) this.remove(kind, key, w);
      st.unseen = undefined;
    }
    return this.finish(w);
  }

  /** Turns the writes into operations, and tells the other importers if claims were given up. */
  private finish(w: Writes): TxnOp[] {
    this.status.pendingEndpoints = this.pending.size;
    this.status.bytes = this.viewBytes;
    for (const k of MESH_KINDS) this.status.counts[k] = this.kinds[k].accepted.size;
    if (this.released) {
      this.released = false;
      this.local.onReleased?.();
    }
    return [...w].map(([key, value]) => (value === undefined ? op.delete(key) : op.put(key, value)));
  }

  private upsert(kind: MeshKind, key: string, value: string, w: Writes): void {
    const st = this.kinds[kind];
    st.unseen?.delete(key);
    const parsed = parseRecord(kind, key, value, this.remote);
    if (typeof parsed === 'string') {
      // What the remote says now is unusable: its previous value goes too (fail closed).
      if (typeof key === 'string' && !key.includes('/')) this.remove(kind, key, w);
      this.count(kind, key, parsed);
      return;
    }
    if (!st.view.has(key) && st.live >= this.limits[kind]) {
      this.count(kind, key, `over the cap of ${this.limits[kind]} ${kind} for ${this.remote.name}`, true);
      return;
    }
    const old = st.view.get(key);
    const grow = value.length - (old === undefined ? -key.length : old.length);
    if (grow > 0 && this.viewBytes + grow > this.limits.bytes) {
      // The previous value goes too: what the remote says now is not held (fail closed).
      if (old !== undefined) this.remove(kind, key, w);
      this.count(kind, key, `over the cap of ${this.limits.bytes} bytes of records for ${this.remote.name}`, true);
      return;
    }
    this.viewBytes += grow;
    st.view.set(key, value);
    if (parsed.kind === 'nodes') {
      this.nodes.set(key, parsed.node);
      this.admitNode(key, w, true);
    } else if (parsed.kind === 'endpoints') {
      const old = this.endpoints.get(key);
      if (old && old.node !== parsed.endpoint.node) this.unindex(key, old.node);
      this.endpoints.set(key, parsed.endpoint);
      let keys = this.endpointsByNode.get(parsed.endpoint.node);
      if (!keys) this.endpointsByNode.set(parsed.endpoint.node, (keys = new Set()));
      keys.add(key);
      this.admitEndpoint(key, w, true);
    } else this.admit(kind, key, value, w, true);
  }

  private remove(kind: MeshKind, key: string, w: Writes): void {
    const st = this.kinds[kind];
    const old = st.view.get(key);
    if (old !== undefined) this.viewBytes -= key.length + old.length;
    st.view.delete(key);
    st.refused.delete(key);
    if (kind === 'nodes') {
      this.nodes.delete(key);
      this.admitNode(key, w, false);
    } else if (kind === 'endpoints') {
      const old = this.endpoints.get(key);
      if (old) this.unindex(key, old.node);
      this.endpoints.delete(key);
      this.pending.delete(key);
      this.withdraw(kind, key, w);
    } else this.withdraw(kind, key, w);
  }

  private unindex(key: string, node: string): void {
    const keys = this.endpointsByNode.get(node);
    keys?.delete(key);
    if (keys?.size === 0) this.endpointsByNode.delete(node);
  }

  /** (Re)decides a node of the view (absent: withdrawn); its endpoints follow when its admission or place changed. */
  private admitNode(name: string, w: Writes, fresh: boolean): void {
    const rec = this.nodes.get(name);
    const before = this.admittedNodes.get(name);
    const st = this.kinds.nodes;
    let after: NodeRecord | undefined;
    if (rec) {
      const problem = remoteNodeProblem(this.remote.name, rec, { local: this.local.local(), claims: this.local.claims, minPodCidrBits: this.local.minPodCidrBits, ...(this.allowed ? { allowed: this.allowed } : {}) });
      if (problem) this.refuse('nodes', name, problem, fresh || before !== undefined);
      else after = rec;
    }
    if (after) {
      st.refused.delete(name);
      this.local.claims.claim(this.remote.name, after);
      this.admittedNodes.set(name, after);
      this.admit('nodes', name, st.view.get(name)!, w, fresh);
    } else if (before) {
      this.released = this.local.claims.release(this.remote.name, name) || this.released;
      this.admittedNodes.delete(name);
      this.withdraw('nodes', name, w);
    }
    if (before?.ip !== after?.ip || before?.podCidr !== after?.podCidr) for (const key of this.endpointsByNode.get(name) ?? []) this.admitEndpoint(key, w, false);
  }

  /** (Re)decides an endpoint of the view: held while its node is not admitted, then checked against it. */
  private admitEndpoint(key: string, w: Writes, fresh: boolean): void {
    const e = this.endpoints.get(key)!;
    const node = this.admittedNodes.get(e.node);
    const st = this.kinds.endpoints;
    if (!node) {
      st.refused.delete(key);
      this.pending.add(key);
      this.withdraw('endpoints', key, w);
      return;
    }
    this.pending.delete(key);
    const problem = remoteEndpointProblem(e, node, this.remote.id, this.local.clusterId);
    if (problem) {
      const was = st.accepted.has(key);
      this.withdraw('endpoints', key, w);
      this.refuse('endpoints', key, problem, fresh || was);
    } else {
      st.refused.delete(key);
      this.admit('endpoints', key, st.view.get(key)!, w, fresh);
    }
  }

  /** Admits a record: written when new, changed, or sent again (`force`: etcd may have lost it). */
  private admit(kind: MeshKind, key: string, value: string, w: Writes, force: boolean): void {
    const st = this.kinds[kind];
    if (!force && st.accepted.get(key) === value) return;
    st.accepted.set(key, value);
    w.set(this.prefix(kind) + key, value);
  }

  private withdraw(kind: MeshKind, key: string, w: Writes): void {
    if (this.kinds[kind].accepted.delete(key)) w.set(this.prefix(kind) + key, undefined);
  }

  private refuse(kind: MeshKind, key: string, reason: string, counted: boolean): void {
    this.kinds[kind].refused.set(key, reason);
    if (counted) this.count(kind, key, reason);
  }

  private count(kind: MeshKind, key: string, reason: string, overLimit = false): void {
    this.status.rejected++;
    this.status.rejectedByKind[kind]++;
    if (overLimit) this.status.overLimit[kind]++;
    this.status.lastRejection = `${kind}/${String(key).slice(0, 64)}: ${reason}`;
    if (this.logged++ < LOGGED_REJECTIONS || this.status.rejected % 1000 === 0) this.log.warn({ peer: this.remote.name, kind, key: String(key).slice(0, 64), reason, rejected: this.status.rejected }, 'rejected record from remote cluster');
  }

  /**
   * Admits the view again: this cluster's nodes changed, or another remote gave up a claim.
   * Admitted nodes first (a node keeps its place against newcomers), then the refused ones
   * by name; endpoints follow their nodes. Queued behind the batches being written.
   */
  revalidate(): void {
    if (this.revalidateQueued || this.stopped) return;
    this.revalidateQueued = true;
    this.queue = this.queue.then(async () => {
      this.revalidateQueued = false;
      if (this.stopped) return;
      const w: Writes = new Map();
      const order = [...this.admittedNodes.keys(), ...[...this.nodes.keys()].filter((n) => !this.admittedNodes.has(n)).sort()];
      for (const name of order) this.admitNode(name, w, false);
      const ops = this.finish(w);
      if (ops.length === 0) return;
      const backoff = new Backoff({ initialMs: 200, maxMs: 5000 });
      while (!this.stopped) {
        try {
          return await this.writeChunks(`admit ${this.remote.name}'s records again`, ops);
        } catch (err) {
          const permanent = err instanceof KvstoreRequestError;
          this.status.lastError = `Cannot write remote state to etcd${permanent ? '' : ' (retrying)'}: ${(err as Error).message}`;
          // As for a batch: a fresh snapshot (the link restarts) rewrites what is admitted and prunes the rest.
          if (permanent) return void this.call?.cancel();
          await sleep(backoff.next());
        }
      }
    });
  }

  private async commit(batch: SyncBatch, ops: TxnOp[]): Promise<void> {
    const kind = batch.kind;
    // Before any record of the remote: agents watch its records while it is listed, knowing its cluster id.
    if (!this.infoWritten) {
      await this.local.kv.put(`${MESH_CLUSTERS_PREFIX}${this.remote.name}`, JSON.stringify({ id: this.remote.id }));
      this.infoWritten = true;
    }
    await this.writeChunks(`import ${kind} from ${this.remote.name}`, ops);
    if (batch.synced) {
      // The snapshot is complete: only now remove what the remote no longer has (or we no longer admit).
      const accepted = this.kinds[kind].accepted;
      const { keys } = await this.local.kv.listKeys(this.prefix(kind));
      const stale = keys.filter((k) => !accepted.has(k.slice(this.prefix(kind).length))).map((k) => op.delete(k));
      await this.writeChunks(`prune ${kind} of ${this.remote.name}`, stale);
      await this.local.kv.put(`${MESH_ROOT}${this.remote.name}/synced/${kind}`, JSON.stringify({ at: new Date().toISOString() }));
      this.status.synced[kind] = true;
      if (MESH_KINDS.every((k) => this.status.synced[k])) {
        this.status.syncMs = Date.now() - this.connectedAtMs;
        delete this.status.lastError;
        this.transition('synced', `snapshot complete in ${this.status.syncMs} ms`);
      }
    }
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

  /** Drops the whole view and gives up every claim (the remote's state is being deleted). */
  private forget(): void {
    for (const name of this.admittedNodes.keys()) this.released = this.local.claims.release(this.remote.name, name) || this.released;
    for (const st of Object.values(this.kinds)) {
      st.view.clear();
      st.accepted.clear();
      st.refused.clear();
      if (st.unseen) st.unseen = new Set();
    }
    this.nodes.clear();
    this.endpoints.clear();
    this.endpointsByNode.clear();
    this.admittedNodes.clear();
    this.pending.clear();
    this.viewBytes = 0;
    this.finish(new Map());
  }

  /** A remote gone for longer than staleAfter: its state goes too (its pods are unreachable anyway). */
  private scheduleStaleRemoval(): void {
    clearTimeout(this.staleTimer);
    this.staleTimer = setTimeout(() => {
      if (this.status.state === 'synced' || this.stopped) return;
      this.queue = this.queue.then(async () => {
        if (this.status.state === 'synced' || this.stopped) return;
        this.log.warn({ peer: this.remote.name }, 'remote unreachable for too long; removing its state');
        this.forget();
        this.infoWritten = false;
        await withdrawRemote(this.local.kv, this.remote.name).catch((err) => this.log.error({ peer: this.remote.name, err: (err as Error).message }, 'cannot delete the state of an unreachable remote; it stays until the next attempt'));
      });
    }, this.local.staleAfterMs);
    this.staleTimer.unref();
  }
}

/** About what a batch weighs in memory: its keys and values (whatever their types, as sent). */
function batchBytes(batch: SyncBatch): number {
  let n = 64;
  for (const e of Array.isArray(batch.upserts) ? batch.upserts : []) for (const x of Array.isArray(e) ? e : []) n += typeof x === 'string' ? x.length : 64;
  for (const k of Array.isArray(batch.deletes) ? batch.deletes : []) n += typeof k === 'string' ? k.length : 64;
  return n;
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

/**
 * Deletes what this cluster imported from `remote`: its listing first, so agents stop using all of
 * its records at once (and watching them), then the records.
 */
export async function withdrawRemote(kv: KvClient, remote: string): Promise<void> {
  await kv.delete(`${MESH_CLUSTERS_PREFIX}${remote}`);
  await kv.deletePrefix(`${MESH_ROOT}${remote}/`);
}
