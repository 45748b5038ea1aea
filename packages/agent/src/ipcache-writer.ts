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
 * shrinks (the next write then adds what was missing, by precedence) or the
 * operator raises mapSizes.ipcache. A write is either the whole set (sync) or
 * the prefixes that changed (apply).
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

/** 0: local endpoints and nodes; 1: policy CIDRs (anything shorter than /32); 2: other pods. */
export function ipcacheRank(prefixlen: number, flags: number): number {
  if (flags & (IPCACHE_F_LOCAL_ENDPOINT | IPCACHE_F_REMOTE_NODE)) return 0;
  return prefixlen < 32 ? 1 : 2;
}

export class IpcacheWriter {
  /** cidr -> what the map holds (value, hex): the mirror every write diffs against. */
  private readonly present = new Map<string, string>();
  /** Entries wanted but not in the map (it was full): written as soon as there is room. */
  private readonly wanted = new Map<string, Buffer>();
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
      this.present.set(`${intToIpv4(e.ip)}/${e.prefixlen}`, v.toString('hex'));
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
    const want = new Set(entries.map((e) => e.cidr));
    const gone = [...new Set([...this.present.keys(), ...this.wanted.keys()])].filter((c) => !want.has(c));
    return this.apply([...gone.map((cidr) => ({ cidr, entry: undefined })), ...entries.map((entry) => ({ cidr: entry.cidr, entry }))]);
  }

  /**
   * Writes what changed for some prefixes (undefined: the prefix goes), leaving the others alone;
   * entries that did not fit before are tried again. Throws only for errors other than a full map.
   */
  apply(changes: ReadonlyArray<{ cidr: string; entry: IpcacheUpsert | undefined }>): IpcacheSyncResult {
    const upserts = new Map<string, Buffer>();
    const removed: string[] = [];
    for (const { cidr, entry } of changes) {
      if (entry === undefined) {
        upserts.delete(cidr);
        this.wanted.delete(cidr);
        if (this.present.has(cidr)) removed.push(cidr);
        continue;
      }
      const v = Buffer.alloc(IPCACHE_VALUE.size);
      const flags = prefixOf(cidr) === 32 ? entry.flags | IPCACHE_F_EXACT : entry.flags & ~IPCACHE_F_EXACT;
      encodeIpcacheValue(v, 0, { identity: entry.identity, tunnelIp: entry.tunnelIp ? ipv4ToInt(entry.tunnelIp) : 0, flags, clusterId: entry.clusterId });
      upserts.set(cidr, v);
    }
    // 1. What is no longer wanted: room for what is.
    if (removed.length > 0) {
      this.map.deleteBatch(keyBatch(removed), removed.length);
      for (const c of removed) this.present.delete(c);
    }
    // 2. Changed entries: an overwrite never needs room.
    const updated: Array<[string, Buffer]> = [];
    const added: Array<[string, Buffer]> = [];
    for (const [cidr, v] of upserts) {
      const p = this.present.get(cidr);
      if (p === undefined) added.push([cidr, v]);
      else if (p !== v.toString('hex')) updated.push([cidr, v]);
    }
    this.write(updated);
    // 3. New entries, and those that did not fit before, most important first.
    for (const [cidr, v] of this.wanted) if (!upserts.has(cidr)) added.push([cidr, v]);
    this.wanted.clear();
    if (added.length > 1) added.sort((a, b) => rankOf(a[0], a[1]) - rankOf(b[0], b[1]));
    const written = this.addAll(added);
    this.missing = this.wanted.size;
    if (this.missing === 0 && this.incompleteSince) {
      this.setIncomplete(false);
      this.log.info({ entries: this.present.size }, 'ipcache complete again');
      this.incompleteSince = undefined;
    }
    return { added: written, updated: updated.length, removed: removed.length, missing: this.missing };
  }

  /**
   * Writes `added` in order; on a full map evicts lower-precedence entries for higher ones. What
   * does not fit, and what was evicted, is kept in `wanted` for the next write. Returns how many
   * of `added` were written.
   */
  private addAll(added: Array<[string, Buffer]>): number {
    let i = 0;
    let evicted = 0;
    /** Present entries by precedence, least important last; built on the first eviction (a full map is rare). */
    let victims: Array<[string, number]> | undefined;
    while (i < added.length) {
      try {
        this.write(added.slice(i));
        i = added.length;
        break;
      } catch (err) {
        if (!(err instanceof BpfSyscallError) || !err.mapFull) throw err;
        const done = err.written ?? 0;
        for (const [cidr, v] of added.slice(i, i + done)) this.present.set(cidr, v.toString('hex'));
        i += done;
        this.markIncomplete();
        victims ??= [...this.present].map(([c, v]): [string, number] => [c, rankOf(c, Buffer.from(v, 'hex'))]).sort((a, b) => a[1] - b[1]);
        const last = victims[victims.length - 1];
        const rank = rankOf(added[i]![0], added[i]![1]);
        if (!last || last[1] <= rank) break;
        victims.pop();
        // Its address resolves to a shorter prefix or world from now on: the flag is already set.
        this.map.delete(keyBatch([last[0]]));
        this.wanted.set(last[0], Buffer.from(this.present.get(last[0])!, 'hex'));
        this.present.delete(last[0]);
        evicted++;
      }
    }
    for (const [cidr, v] of added.slice(i)) this.wanted.set(cidr, v);
    if (i < added.length || evicted > 0) {
      this.log.warn({ map: this.map.name, maxEntries: this.map.maxEntries, missing: this.wanted.size, evicted }, 'ipcache full: entries missing (enforcing endpoints drop peers without an exact entry); raise mapSizes.ipcache in the agent config');
    }
    return i;
  }

  private markIncomplete(): void {
    if (this.incompleteSince) return;
    this.setIncomplete(true);
    this.incompleteSince = new Date().toISOString();
  }

  private write(entries: Array<[string, Buffer]>): void {
    if (entries.length === 0) return;
    const values = Buffer.alloc(entries.length * IPCACHE_VALUE.size);
    entries.forEach(([, v], i) => v.copy(values, i * IPCACHE_VALUE.size));
    this.map.updateBatch(keyBatch(entries.map(([c]) => c)), values, entries.length);
    for (const [cidr, v] of entries) this.present.set(cidr, v.toString('hex'));
  }
}

function prefixOf(cidr: string): number {
  return Number(cidr.slice(cidr.indexOf('/') + 1));
}

/** The precedence of an entry as encoded (flags at IPCACHE_VALUE.offsets.flags). */
function rankOf(cidr: string, value: Buffer): number {
  return ipcacheRank(prefixOf(cidr), value.readUInt16LE(IPCACHE_VALUE.offsets.flags!));
}

function keyBatch(cidrs: readonly string[]): Buffer {
  const keys = Buffer.alloc(cidrs.length * IPCACHE_KEY.size);
  cidrs.forEach((cidr, i) => {
    const slash = cidr.indexOf('/');
    encodeIpcacheKey(keys, i * IPCACHE_KEY.size, ipv4ToInt(cidr.slice(0, slash)), Number(cidr.slice(slash + 1)));
  });
  return keys;
}
