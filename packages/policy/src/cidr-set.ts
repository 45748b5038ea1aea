/**
 * A set of IPv4 prefixes, each with a value (who claims it), answering "does
 * this prefix overlap any of them, and whose is it?" in O(33 + log n): the
 * question a mesh asks of every record a remote cluster sends (its pod CIDRs
 * and addresses must not overlap this cluster's, nor another remote's).
 *
 * Two prefixes overlap exactly when one contains the other. Containment of
 * the query is looked up per prefix length present in the set (at most 33
 * hash lookups); an entry inside the query is found by a binary search over
 * the entries sorted by address: any entry whose address lies in the query's
 * range and is not shorter than the query is inside it.
 */
import type { Cidr } from '@weft/common';

function mask(bits: number): number {
  return bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
}

/** Last address of a prefix. */
function lastOf(c: Cidr): number {
  return (c.addr | (~mask(c.bits) >>> 0)) >>> 0;
}

interface Entry<T> {
  cidr: Cidr;
  value: T;
}

export class CidrSet<T> {
  /** bits -> network address -> entries (several values may claim one prefix). */
  private readonly byBits = new Map<number, Map<number, Array<Entry<T>>>>();
  /** Every entry, sorted by network address. */
  private readonly sorted: Array<Entry<T>> = [];

  get size(): number {
    return this.sorted.length;
  }

  add(cidr: Cidr, value: T): void {
    const entry = { cidr: { addr: cidr.addr >>> 0, bits: cidr.bits }, value };
    let level = this.byBits.get(cidr.bits);
    if (!level) this.byBits.set(cidr.bits, (level = new Map()));
    const list = level.get(entry.cidr.addr);
    if (list) list.push(entry);
    else level.set(entry.cidr.addr, [entry]);
    this.sorted.splice(this.lowerBound(entry.cidr.addr), 0, entry);
  }

  /** Removes the entries of `cidr` whose value is `value` (by identity). */
  delete(cidr: Cidr, value: T): void {
    const level = this.byBits.get(cidr.bits);
    const list = level?.get(cidr.addr >>> 0);
    if (!level || !list) return;
    const kept = list.filter((e) => e.value !== value);
    if (kept.length === list.length) return;
    if (kept.length > 0) level.set(cidr.addr >>> 0, kept);
    else {
      level.delete(cidr.addr >>> 0);
      if (level.size === 0) this.byBits.delete(cidr.bits);
    }
    for (let i = this.lowerBound(cidr.addr >>> 0); i < this.sorted.length && this.sorted[i]!.cidr.addr === cidr.addr >>> 0; ) {
      const e = this.sorted[i]!;
      if (e.cidr.bits === cidr.bits && e.value === value) this.sorted.splice(i, 1);
      else i++;
    }
  }

  /**
   * The first entry overlapping `cidr` (containing it, or inside it) whose value passes `accept`
   * (default: any), or undefined. Entries containing the query are tried first.
   */
  overlapping(cidr: Cidr, accept: (value: T) => boolean = () => true): { cidr: Cidr; value: T } | undefined {
    for (const [bits, level] of this.byBits) {
      if (bits > cidr.bits) continue;
      for (const e of level.get((cidr.addr & mask(bits)) >>> 0) ?? []) if (accept(e.value)) return e;
    }
    const last = lastOf(cidr);
    for (let i = this.lowerBound(cidr.addr >>> 0); i < this.sorted.length; i++) {
      const e = this.sorted[i]!;
      if (e.cidr.addr > last) break;
      if (accept(e.value)) return e;
    }
    return undefined;
  }

  /** Every entry, in address order. */
  entries(): Array<{ cidr: Cidr; value: T }> {
    return [...this.sorted];
  }

  /** Index of the first entry whose address is >= addr. */
  private lowerBound(addr: number): number {
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.sorted[mid]!.cidr.addr < addr) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
