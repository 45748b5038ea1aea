/**
 * IPv4 addresses and prefixes: the one place their arithmetic lives (parsing with one spelling per
 * address, formatting, masks, containment). Addresses are unsigned 32-bit numbers in host order.
 */

export interface Cidr {
  /** Network address as an unsigned 32-bit integer. */
  addr: number;
  bits: number;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function parseIpv4(text: string): number | undefined {
  if (!IPV4.test(text)) return undefined;
  return text.split('.').reduce((acc, o) => acc * 256 + Number(o), 0) >>> 0;
}

export function formatIpv4(addr: number): string {
  return `${addr >>> 24}.${(addr >>> 16) & 255}.${(addr >>> 8) & 255}.${addr & 255}`;
}

/** `a.b.c.d` to its number; throws a RangeError naming the text (for input already validated). */
export function ipv4ToInt(text: string): number {
  const n = parseIpv4(text);
  if (n === undefined) throw new RangeError(`Invalid IPv4 address ${JSON.stringify(text)}`);
  return n;
}

/** The netmask of a prefix length, as a number. */
export function prefixMask(bits: number): number {
  return bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
}

/** Parses `a.b.c.d/n`; the address must be the network address. Returns a reason on failure. */
export function parseCidr(text: string): Cidr | string {
  const slash = text.indexOf('/');
  if (slash < 0) return `${JSON.stringify(text)} is not a CIDR (a.b.c.d/n)`;
  const addr = parseIpv4(text.slice(0, slash));
  const bitsText = text.slice(slash + 1);
  const bits = /^\d{1,2}$/.test(bitsText) ? Number(bitsText) : NaN;
  if (addr === undefined || !(bits >= 0 && bits <= 32)) return `${JSON.stringify(text)} is not an IPv4 CIDR (a.b.c.d/0-32)`;
  if ((addr & prefixMask(bits)) >>> 0 !== addr) return `${JSON.stringify(text)} has host bits set (network is ${formatIpv4((addr & prefixMask(bits)) >>> 0)}/${bits})`;
  return { addr, bits };
}

export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  return inner.bits >= outer.bits && ((inner.addr & prefixMask(outer.bits)) >>> 0) === outer.addr;
}

export function formatCidr(c: Cidr): string {
  return `${formatIpv4(c.addr)}/${c.bits}`;
}
