/**
 * The standalone Service address range and the arithmetic on it. Pure: the
 * store owns the etcd index; this module only says which addresses exist,
 * which are usable and which free one to try next.
 *
 * Usable addresses are SERVICE_CIDR without its network and broadcast
 * addresses (10.96.0.1-10.96.255.254), as the Kubernetes API server does.
 */

import { formatIpv4 as formatIPv4, parseIpv4 as parseIPv4 } from '@weft/common';

export { formatIPv4, parseIPv4 };

export const SERVICE_CIDR = '10.96.0.0/16';

const [BASE, PREFIX] = SERVICE_CIDR.split('/') as [string, string];
const NETWORK = parseIPv4(BASE)!;
const SIZE = 2 ** (32 - Number(PREFIX));
/** First and last usable address, as 32-bit numbers. */
const FIRST = NETWORK + 1;
const LAST = NETWORK + SIZE - 2;

/** Why `ip` cannot be a Service's clusterIP, or undefined when it can. */
export function clusterIPProblem(ip: string): string | undefined {
  const n = parseIPv4(ip);
  if (n === undefined) return `${JSON.stringify(ip)} is not an IPv4 address`;
  if (n < NETWORK || n >= NETWORK + SIZE) return `${JSON.stringify(ip)} is not in the service range ${SERVICE_CIDR}`;
  if (n < FIRST || n > LAST) return `${JSON.stringify(ip)} is the ${n === NETWORK ? 'network' : 'broadcast'} address of the service range ${SERVICE_CIDR}`;
  return undefined;
}

/** Number of usable addresses of the range. */
export const SERVICE_IP_COUNT = LAST - FIRST + 1;

/**
 * A random usable address not in `used` (a set or map keyed by dotted-decimal
 * address), or undefined when every address is taken. Random rather than
 * lowest-free, so two appliers racing for an address rarely pick the same one.
 */
export function pickFreeClusterIP(used: { has(ip: string): boolean; readonly size: number }, random: () => number = Math.random): string | undefined {
  const free = (n: number): boolean => !used.has(formatIPv4(n));
  if (used.size < SERVICE_IP_COUNT / 2) {
    for (let i = 0; i < 32; i++) {
      const n = FIRST + Math.floor(random() * SERVICE_IP_COUNT);
      if (free(n)) return formatIPv4(n);
    }
  }
  // A crowded range: walk it once from a random start.
  const start = Math.floor(random() * SERVICE_IP_COUNT);
  for (let i = 0; i < SERVICE_IP_COUNT; i++) {
    const n = FIRST + ((start + i) % SERVICE_IP_COUNT);
    if (free(n)) return formatIPv4(n);
  }
  return undefined;
}
