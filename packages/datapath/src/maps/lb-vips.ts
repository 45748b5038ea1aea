/**
 * weft_lb_vips, the bitmap over service addresses that lets lb_egress skip the
 * weft_lb_services lookup for a destination no frontend has (bpf/lib/weft_types.h).
 *
 * Invariant: while a frontend is in weft_lb_services, its address's bit is set.
 * So bits are set (`admit`) before frontends are written, and cleared only by
 * `rebuild` from the addresses of the frontends that remain, after the others
 * were deleted. Each word is written whole by one syscall; a word being
 * rewritten keeps every bit both its old and new value have, so a packet never
 * sees a needed bit clear. A stale set bit costs one lookup that misses.
 */
import type { BpfMap } from '../bpf-map.js';
import { LB_VIP_FILTER_WORDS, LB_VIP_HASH_MUL } from './layout.js';

/** The bit of `vip` (host order, as ipv4ToInt gives it): the top 16 bits of a 32-bit Fibonacci hash. */
export function lbVipBit(vip: number): number {
  return Math.imul(vip, LB_VIP_HASH_MUL) >>> 16;
}

export class LbVipFilter {
  /** What the map holds, word by word. */
  private readonly words = new BigUint64Array(LB_VIP_FILTER_WORDS);
  private readonly key = Buffer.alloc(4);
  private readonly value = Buffer.alloc(8);

  constructor(private readonly map: BpfMap) {
    for (let i = 0; i < LB_VIP_FILTER_WORDS; i++) {
      this.key.writeUInt32LE(i);
      this.words[i] = this.map.lookup(this.key)?.readBigUInt64LE() ?? 0n;
    }
  }

  /** Sets the bits of `vips`; call before writing their frontends. Returns the words written. */
  admit(vips: Iterable<number>): number {
    const next = this.words.slice();
    for (const vip of vips) setBit(next, vip);
    return this.write(next);
  }

  /** Leaves exactly the bits of `vips` (the address of every frontend in the map). Returns the words written. */
  rebuild(vips: Iterable<number>): number {
    const next = new BigUint64Array(LB_VIP_FILTER_WORDS);
    for (const vip of vips) setBit(next, vip);
    return this.write(next);
  }

  /** Is the bit of `vip` set (for inspection and tests)? */
  has(vip: number): boolean {
    const bit = lbVipBit(vip);
    return ((this.words[bit >>> 6]! >> BigInt(bit & 63)) & 1n) === 1n;
  }

  private write(next: BigUint64Array): number {
    let written = 0;
    for (let i = 0; i < LB_VIP_FILTER_WORDS; i++) {
      if (next[i] === this.words[i]) continue;
      this.key.writeUInt32LE(i);
      this.value.writeBigUInt64LE(next[i]!);
      this.map.update(this.key, this.value);
      this.words[i] = next[i]!;
      written++;
    }
    return written;
  }
}

function setBit(words: BigUint64Array, vip: number): void {
  const bit = lbVipBit(vip);
  words[bit >>> 6] = words[bit >>> 6]! | (1n << BigInt(bit & 63));
}
