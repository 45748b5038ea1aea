/**
 * Port ranges as prefixes, for the datapath's LPM policy trie: an inclusive
 * range [from, to] of 16-bit ports becomes the smallest set of aligned
 * power-of-two blocks (at most 30 for any range).
 */
export interface PortPrefix {
  /** First port of the block. */
  port: number;
  /** Leading bits of the port that must match (16 = exactly this port). */
  bits: number;
}

export function rangeToPrefixes(from: number, to: number): PortPrefix[] {
  const out: PortPrefix[] = [];
  let start = from;
  while (start <= to) {
    // The largest aligned block starting at `start` that stays within `to`.
    let size = start === 0 ? 1 << 16 : start & -start;
    while (start + size - 1 > to) size >>= 1;
    out.push({ port: start, bits: 16 - Math.log2(size) });
    start += size;
  }
  return out;
}

/** Whether the block `inner` lies within the block `outer`. */
export function prefixContains(outer: PortPrefix, inner: PortPrefix): boolean {
  if (inner.bits < outer.bits) return false;
  const shift = 16 - outer.bits;
  return outer.bits === 0 || inner.port >>> shift === outer.port >>> shift;
}
