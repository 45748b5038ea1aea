/**
 * IpcacheWriter: keeps weft_ipcache equal to what the cluster says, writing
 * only differences, and fails closed when it is full.
 *
 * A missing entry is not harmless: the datapath's lookup then answers with a
 * shorter prefix (a policy CIDR's identity) or none ("world"), and a policy
 * may allow those where the real identity is denied (a CIDR deny, a deny of a
 * remote pod's identity). So:
 * - Deletions go first (they make room), then changed entries (overwriting an
 *   existing entry never needs room), then new ones by precedence: local
 *   endpoints and nodes, then policy CIDRs, then other pods. A new entry that
 *   does not fit evicts a present entry of lower precedence, so what is
 *   missing is always the least important.
 * - While anything is missing the node config carries
 *   NODE_F_IPCACHE_INCOMPLETE (set before an eviction, cleared by the first
 *   sync that writes everything) and the datapath trusts only exact (/32,
 *   IPCACHE_F_EXACT) hits for the directions an endpoint enforces.
 *
 * Only the agent writes the map, so room only appears when the cluster
 * shrinks (a later sync then writes what was missing) or the operator raises
 * mapSizes.ipcache.
 */
import type { Logger } from '@weft/common';
import {
  BpfSyscallError,
  decodeIpcache,
  encodeIpcacheKey,
  encodeIpcacheValue,
  intToIpv4,
  ipv4ToInt,
  IPCACHE_F_EXACT,
  IPCACHE_F_LOCAL_ENDPOINT,
  IPCACHE_F_REMOTE_NODE,
  IPCACHE_KEY,
  IPCACHE_VALUE,
  type BpfMap,
} from '@weft/datapath';
import type { IpcacheStatus, IpcacheSyncResult, IpcacheUpsert } from './datapath-port.js';

/** Precedence classes, most important first. */
const RANKS = 3;

/** 0: local endpoints and nodes; 1: policy CIDRs (anything shorter than /32); 2: other pods. */
export function ipcacheRank(prefixlen: number, flags: number): number {
  if (flags & (IPCACHE_F_LOCAL_ENDPOINT | IPCACHE_F_REMOTE_NODE)) return 0;
  return prefixlen < 32 ? 1 : 2;
}

interface Present {
  value: string;
  rank: number;
}

export class IpcacheWriter {
  /** cidr -> what the map holds (value hex) and its precedence. */
  private readonly present = new Map<string, Present>();
  /** Present cidrs by rank, for eviction. */
  private readonly byRank: Array<Set<string>> = Array.from({ length: RANKS }, () => new Set());
  private missing = 0;
  private incompleteSince: string | undefined;

  /**
   * `setIncomplete` writes NODE_F_IPCACHE_INCOMPLETE into the node config; `incomplete` is what the
   * node config said at start (a previous run may have left the map incomplete).
   */
  constructor(
    private readonly map: BpfMap,
    private readonly setIncomplete: (incomplete: boolean) => void,
    private readonly log: Logger,
    incomplete = false,
  ) {
    if (incomplete) this.incompleteSince = new Date().toISOString();
  }

  /** Reads what the map holds (a restart). */
  load(): number {
    for (const [k, v] of this.map.entries()) {
      const e = decodeIpcache(k, v);
      this.put(`${intToIpv4(e.ip)}/${e.prefixlen}`, v.toString('hex'), ipcacheRank(e.prefixlen, e.flags));
    }
    return this.present.size;
  }

  status(): IpcacheStatus {
    const s: IpcacheStatus = { complete: this.incompleteSince === undefined, entries: this.present.size, maxEntries: this.map.maxEntries, missing: this.missing };
    if (this.incompleteSince) s.incompleteSince = this.incompleteSince;
    return s;
  }

  /** Makes the map hold `entries` (as many as fit, by precedence). Throws only for errors other than a full map. */
  sync(entries: readonly IpcacheUpsert[]): IpcacheSyncResult {
    const want = new Map<string, { value: Buffer; rank: number }>();
    for (const e of entries) {
      const prefixlen = Number(e.cidr.slice(e.cidr.indexOf('/') + 1));
      const v = Buffer.alloc(IPCACHE_VALUE.size);
      const flags = prefixlen === 32 ? e.flags | IPCACHE_F_EXACT : e.flags & ~IPCACHE_F_EXACT;
      encodeIpcacheValue(v, 0, { identity: e.identity, tunnelIp: e.tunnelIp ? ipv4ToInt(e.tunnelIp) : 0, flags, clusterId: e.clusterId });
      want.set(e.cidr, { value: v, rank: ipcacheRank(prefixlen, flags) });
    }
    // 1. What is no longer wanted: room for what is.
    const removed = [...this.present.keys()].filter((c) => !want.has(c));
    if (removed.length > 0) {
      this.map.deleteBatch(keyBatch(removed), removed.length);
      for (const c of removed) this.drop(c);
    }
    // 2. Changed entries: an overwrite never needs room.
    const updated: Array<[string, Buffer, number]> = [];
    const added: Array<[string, Buffer, number]> = [];
    for (const [cidr, w] of want) {
      const p = this.present.get(cidr);
      if (!p) added.push([cidr, w.value, w.rank]);
      else if (p.value !== w.value.toString('hex')) updated.push([cidr, w.value, w.rank]);
    }
    this.write(updated);
    // 3. New entries, most important first.
    added.sort((a, b) => a[2] - b[2]);
    const { written, evicted } = this.addAll(added);
    this.missing = added.length - written + evicted;
    if (this.missing === 0 && this.incompleteSince) {
      this.setIncomplete(false);
      this.log.info({ entries: this.present.size }, 'ipcache complete again');
      this.incompleteSince = undefined;
    }
    return { added: written, updated: updated.length, removed: removed.length, missing: this.missing };
  }

  /** Writes `added` in order; on a full map evicts lower-precedence entries for higher ones. */
  private addAll(added: Array<[string, Buffer, number]>): { written: number; evicted: number } {
    let i = 0;
    let evicted = 0;
    while (i < added.length) {
      try {
        this.write(added.slice(i));
        i = added.length;
        break;
      } catch (err) {
        if (!(err instanceof BpfSyscallError) || !err.mapFull) throw err;
        const done = err.written ?? 0;
        for (const [cidr, v, rank] of added.slice(i, i + done)) this.put(cidr, v.toString('hex'), rank);
        i += done;
        this.markIncomplete();
        const victim = this.victimBelow(added[i]![2]);
        if (!victim) break;
        // The victim's address resolves to a shorter prefix or world from now on: the flag is already set.
        this.map.delete(keyBatch([victim]));
        this.drop(victim);
        evicted++;
      }
    }
    if (i < added.length || evicted > 0) {
      this.log.warn({ map: this.map.name, maxEntries: this.map.maxEntries, missing: added.length - i + evicted, evicted }, 'ipcache full: entries missing (enforcing endpoints drop peers without an exact entry); raise mapSizes.ipcache');
    }
    return { written: i, evicted };
  }

  private markIncomplete(): void {
    if (this.incompleteSince) return;
    this.setIncomplete(true);
    this.incompleteSince = new Date().toISOString();
  }

  /** A present entry of lower precedence than `rank` (the least important first). */
  private victimBelow(rank: number): string | undefined {
    for (let r = RANKS - 1; r > rank; r--) {
      const first = this.byRank[r]!.values().next();
      if (!first.done) return first.value;
    }
    return undefined;
  }

  private write(entries: Array<[string, Buffer, number]>): void {
    if (entries.length === 0) return;
    const values = Buffer.alloc(entries.length * IPCACHE_VALUE.size);
    entries.forEach(([, v], i) => v.copy(values, i * IPCACHE_VALUE.size));
    this.map.updateBatch(keyBatch(entries.map(([c]) => c)), values, entries.length);
    for (const [cidr, v, rank] of entries) this.put(cidr, v.toString('hex'), rank);
  }

  private put(cidr: string, value: string, rank: number): void {
    const p = this.present.get(cidr);
    if (p) this.byRank[p.rank]!.delete(cidr);
    this.present.set(cidr, { value, rank });
    this.byRank[rank]!.add(cidr);
  }

  private drop(cidr: string): void {
    const p = this.present.get(cidr);
    if (!p) return;
    this.byRank[p.rank]!.delete(cidr);
    this.present.delete(cidr);
  }
}

function keyBatch(cidrs: readonly string[]): Buffer {
  const keys = Buffer.alloc(cidrs.length * IPCACHE_KEY.size);
  cidrs.forEach((cidr, i) => {
    const slash = cidr.indexOf('/');
    encodeIpcacheKey(keys, i * IPCACHE_KEY.size, ipv4ToInt(cidr.slice(0, slash)), Number(cidr.slice(slash + 1)));
  });
  return keys;
}
