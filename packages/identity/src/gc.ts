/**
 * Garbage collection of identities no node references any more. Run by one
 * process per cluster (the clustermesh-apiserver, or `weft identity gc`).
 *
 * Mark and sweep over two rounds: an identity without references is marked
 * with the mod revision of its index key; a later round deletes it only if it
 * still has no references and the index is unchanged, in one transaction that
 * compares that revision. Every claim rewrites the index, so a node that took a
 * reference between our read and our delete makes the delete fail: an id in
 * use is never deleted, and an id is never freed for reuse while a claim on it
 * can still succeed. Deletions per round are capped, so a GC after a mass
 * outage does not flood etcd.
 */
import { createLogger, type Logger } from '@weft/common';
import { cmp, op, type KvClient } from '@weft/kvstore';
import { IdentityLayout } from './layout.js';
import { parseIdentity } from './numeric.js';

export interface GcOptions {
  client: KvClient;
  layout?: IdentityLayout;
  /** Time between rounds when started. Default 5 minutes. */
  intervalMs?: number;
  /** Most deletions in one round. Default 1000. */
  maxDeletesPerRound?: number;
  logger?: Logger;
}

export interface GcRound {
  /** Identities seen without references for the first time this round. */
  marked: number;
  /** Identities deleted. */
  deleted: number[];
  /** Marked identities that were referenced or claimed again, and so kept. */
  revived: number;
  /** Deletes that lost a race with a claim (and so did nothing). */
  raced: number;
  /** Identities alive with references. */
  alive: number;
}

export class IdentityGarbageCollector {
  private readonly client: KvClient;
  private readonly layout: IdentityLayout;
  private readonly intervalMs: number;
  private readonly maxDeletes: number;
  private readonly log: Logger;
  /** id -> index mod revision when it was marked. */
  private readonly marks = new Map<number, { labels: string; indexRevision: number; masterRevision: number }>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;

  constructor(options: GcOptions) {
    this.client = options.client;
    this.layout = options.layout ?? new IdentityLayout();
    this.intervalMs = options.intervalMs ?? 5 * 60_000;
    this.maxDeletes = options.maxDeletesPerRound ?? 1000;
    this.log = options.logger ?? createLogger({ component: 'identity-gc' });
  }

  start(): this {
    if (this.timer) return this;
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = this.runOnce()
        .catch((err: Error) => this.log.warn({ err: err.message }, 'identity gc round failed; next round retries'))
        .finally(() => (this.running = undefined));
    }, this.intervalMs);
    this.timer.unref();
    return this;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  async runOnce(signal?: AbortSignal): Promise<GcRound> {
    const opts = signal ? { signal } : {};
    const L = this.layout;
    // Masters, references and index in one read transaction: one revision.
    const snap = await this.client.txn('read identities for gc', {
      compare: [],
      success: [op.getPrefix(L.mastersPrefix), op.getPrefix(L.refsPrefix), op.getPrefix(L.indexPrefix), op.getPrefix(L.legacyRefsPrefix)],
    }, opts);
    // Legacy references (refs/<id>/<node>, agents before per-node keys) keep an id alive too.
    const [masters, refs, index] = [snap.gets[0]!, [...snap.gets[1]!, ...snap.gets[3]!], snap.gets[2]!];
    const referenced = new Set<string>();
    for (const kv of refs) {
      const ref = L.parseRef(kv.key);
      if (ref) referenced.add(ref.id);
    }
    const indexByLabels = new Map(index.map((kv) => [kv.key.slice(L.indexPrefix.length), kv]));
    const round: GcRound = { marked: 0, deleted: [], revived: 0, raced: 0, alive: 0 };
    const seen = new Set<number>();
    for (const master of masters) {
      const suffix = L.masterSuffix(master.key);
      const id = parseIdentity(suffix);
      if (id === undefined) continue; // corrupt keys are reported by caches, never deleted blindly
      seen.add(id);
      if (referenced.has(suffix)) {
        round.alive++;
        if (this.marks.delete(id)) round.revived++;
        continue;
      }
      const labels = master.value.toString();
      const idx = indexByLabels.get(labels);
      const indexPointsHere = idx !== undefined && parseIdentity(idx.value.toString()) === id;
      const indexRevision = indexPointsHere ? idx!.modRevision : 0;
      const mark = this.marks.get(id);
      if (!mark || mark.indexRevision !== indexRevision || mark.masterRevision !== master.modRevision || mark.labels !== labels) {
        if (mark) round.revived++;
        else round.marked++;
        this.marks.set(id, { labels, indexRevision, masterRevision: master.modRevision });
        continue;
      }
      if (round.deleted.length >= this.maxDeletes) continue;
      const res = await this.client.txn(`delete unused identity ${id}`, {
        compare: [
          cmp.modRevisionIs(L.master(id), master.modRevision),
          indexPointsHere ? cmp.modRevisionIs(L.index(labels), indexRevision) : cmp.absent(L.index(labels)),
        ],
        success: indexPointsHere ? [op.delete(L.master(id)), op.delete(L.index(labels))] : [op.delete(L.master(id))],
      }, opts);
      this.marks.delete(id);
      if (res.succeeded) round.deleted.push(id);
      else round.raced++;
    }
    for (const id of [...this.marks.keys()]) if (!seen.has(id)) this.marks.delete(id);
    if (round.deleted.length > 0 || round.raced > 0) this.log.info({ ...round, deleted: round.deleted.length }, 'identity gc round');
    return round;
  }
}
