/**
 * ConntrackTable: the agent's side of the conntrack table (bpf/lib/ct.h).
 * The datapath treats a dead entry as absent and deletes the ones it meets;
 * this deletes the rest, so dead entries do not fill the table or hold an
 * endpoint's quota, and it flushes a removed endpoint's entries.
 *
 * A sweep walks the whole table in batches (BPF_MAP_LOOKUP_BATCH, chunks of
 * 4096), deletes what is dead in each chunk at once (BPF_MAP_DELETE_BATCH),
 * counts the live entries per endpoint and writes those counts over
 * weft_ct_count. The datapath adds to and subtracts from the counts as it
 * goes; a count written here can miss what changed during the walk, and the
 * next sweep writes it right again: drift never outlives a sweep.
 *
 * The walk yields to the event loop between chunks, and sweeps (including
 * flushes) run one at a time, in order.
 *
 * Race: an entry seen dead and re-created by the datapath before the delete
 * is deleted all the same (the kernel has no compare-and-delete); the
 * connection's next packet is judged by policy as new. The window is one
 * chunk's read-to-delete time.
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { CT_COUNT_SLOTS, CT_KEY, CT_VALUE, ctEntryEpId, ctEntryExpires, decodeCtStats, ipv4ToInt, type BpfMap, type CtStats } from '@weft/datapath';
import type { ConntrackSweep } from './datapath-port.js';

export interface ConntrackMaps {
  ct: BpfMap;
  /** Array by ep_id, __u32 entries held. */
  count: BpfMap;
  /** Per-CPU struct ct_stats. */
  stats: BpfMap;
}

/** Entries of these endpoints, and entries with these addresses on either side, are deleted. */
export interface Flush {
  epIds: ReadonlySet<number>;
  /** IPv4 as unsigned integers. */
  ips: ReadonlySet<number>;
}

const CHUNK = 4096;

/** CLOCK_MONOTONIC in ns, the clock of bpf_ktime_get_ns() (process.hrtime is CLOCK_MONOTONIC too). */
export function monotonicNs(): bigint {
  return process.hrtime.bigint();
}

export class ConntrackTable {
  private queue: Promise<unknown> = Promise.resolve();
  private readonly countKey = Buffer.alloc(4);
  private readonly countValue = Buffer.alloc(4);

  constructor(
    private readonly maps: ConntrackMaps,
    private readonly now: () => bigint = monotonicNs,
  ) {}

  /** The table's size. */
  get capacity(): number {
    return this.maps.ct.maxEntries;
  }

  /** Deletes dead entries and rewrites the per-endpoint counts. */
  sweep(): Promise<ConntrackSweep> {
    return this.serialize(() => this.walk(undefined));
  }

  /**
   * Deletes every entry of endpoint `epId` and every entry with `ip` on either side (other
   * endpoints' connections to it), and zeroes its count, in the same walk as a sweep.
   */
  flushEndpoint(ip: string, epId: number): Promise<ConntrackSweep> {
    return this.serialize(() => this.walk({ epIds: new Set([epId]), ips: new Set([ipv4ToInt(ip)]) }));
  }

  /**
   * Copies the live connections of a table of the previous layout (weft_ct_v2: an LRU with
   * `last_seen` where v3 has `expires`, and no TCP state) into this one, so an agent upgrade
   * keeps the established connections whose replies only conntrack admits. An entry lives for
   * its protocol's timeout after its last packet (TCP: the established one, v2 knew no state);
   * one already past it stays behind. Then counts are written as a sweep does. Run before
   * programs of the new layout are attached. Returns how many entries were copied.
   */
  migrateLegacy(legacy: BpfMap, lifetimeNs: (protocol: number) => bigint): Promise<number> {
    return this.serialize(async () => {
      const ks = CT_KEY.size;
      const vs = CT_VALUE.size;
      if (legacy.keySize !== ks || legacy.valueSize !== vs) return 0; // not the layout this knows
      const now = this.now();
      const keys = Buffer.alloc(CHUNK * ks);
      const values = Buffer.alloc(CHUNK * vs);
      let copied = 0;
      for (const chunk of legacy.lookupBatches(CHUNK)) {
        let n = 0;
        for (let i = 0; i < chunk.count; i++) {
          const lastSeen = chunk.values.readBigUInt64LE(i * vs); // v2's first field
          const expires = lastSeen + lifetimeNs(chunk.keys.readUInt8(i * ks + CT_KEY.offsets.protocol!));
          if (expires < now) continue;
          chunk.keys.copy(keys, n * ks, i * ks, (i + 1) * ks);
          chunk.values.copy(values, n * vs, i * vs, (i + 1) * vs);
          values.writeBigUInt64LE(expires, n * vs + CT_VALUE.offsets.expires!);
          n++;
        }
        if (n === 0) continue;
        this.maps.ct.updateBatch(keys.subarray(0, n * ks), values.subarray(0, n * vs), n);
        copied += n;
        if (copied + CHUNK > this.capacity) break; // what does not fit stays behind: new connections need room too
        await yieldToLoop();
      }
      await this.walk(undefined);
      return copied;
    });
  }

  /** weft_ct_count: endpoint id -> entries, the non-zero ones. */
  counts(): Map<number, number> {
    const out = new Map<number, number>();
    for (const { keys, values, count } of this.maps.count.lookupBatches(CT_COUNT_SLOTS)) {
      for (let i = 0; i < count; i++) {
        const n = values.readInt32LE(i * 4);
        if (n !== 0) out.set(keys.readUInt32LE(i * 4), n);
      }
    }
    return out;
  }

  /** Drops the datapath counted (new connections refused). */
  stats(): CtStats {
    const v = this.maps.stats.lookup(Buffer.alloc(4));
    return v ? decodeCtStats(v) : { dropsFull: 0n, dropsQuota: 0n };
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async walk(flush: Flush | undefined): Promise<ConntrackSweep> {
    const started = performance.now();
    const now = this.now();
    const { ct } = this.maps;
    const ks = CT_KEY.size;
    const vs = CT_VALUE.size;
    const dead = Buffer.alloc(CHUNK * ks);
    const live = new Map<number, number>();
    let scanned = 0;
    let expired = 0;
    let flushed = 0;
    for (const { keys, values, count } of ct.lookupBatches(CHUNK)) {
      let n = 0;
      for (let i = 0; i < count; i++) {
        const ep = ctEntryEpId(values, i * vs);
        const gone = flush !== undefined && isFlushed(flush, ep, keys, i * ks);
        if (gone || ctEntryExpires(values, i * vs) < now) {
          keys.copy(dead, n * ks, i * ks, (i + 1) * ks);
          n++;
          if (gone) flushed++;
          else expired++;
        } else {
          live.set(ep, (live.get(ep) ?? 0) + 1);
        }
      }
      scanned += count;
      // At once, while the chunk is fresh (the race above); a key the datapath deleted meanwhile is skipped.
      if (n > 0) ct.deleteBatch(dead.subarray(0, n * ks), n);
      await yieldToLoop();
    }
    const recounted = this.writeCounts(live);
    return { scanned, expired, flushed, live, recounted, durationMs: Math.round((performance.now() - started) * 10) / 10 };
  }

  /** Rewrites every count that differs from the walk's. */
  private writeCounts(live: Map<number, number>): number {
    let changed = 0;
    const have = this.counts();
    for (const ep of new Set([...have.keys(), ...live.keys()])) {
      const want = live.get(ep) ?? 0;
      if (have.get(ep) === want) continue;
      this.countKey.writeUInt32LE(ep);
      this.countValue.writeInt32LE(want);
      this.maps.count.update(this.countKey, this.countValue);
      changed++;
    }
    return changed;
  }
}

function isFlushed(flush: Flush, ep: number, keys: Buffer, off: number): boolean {
  if (flush.epIds.has(ep)) return true;
  return flush.ips.has(keys.readUInt32BE(off + CT_KEY.offsets.saddr!)) || flush.ips.has(keys.readUInt32BE(off + CT_KEY.offsets.daddr!));
}
