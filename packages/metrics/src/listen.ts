/**
 * The `listen` setting of a metrics endpoint: `IPv4:port`, e.g. `0.0.0.0:9962` (every address of
 * the host, as Cilium's agent binds on the host network) or the node's own address. Port 0 takes a
 * free port (tests); the server says which.
 */
import { parseIpv4 } from '@weft/common';

export interface ListenAddress {
  host: string;
  port: number;
}

/** The address `listen` names, or why it names none. */
export function parseListen(listen: unknown): ListenAddress | string {
  if (typeof listen !== 'string') return 'must be a string IPv4:port';
  const m = /^([0-9.]+):(\d{1,5})$/.exec(listen);
  if (!m) return 'must be IPv4:port, e.g. 0.0.0.0:9962';
  const port = Number(m[2]);
  if (port > 65535) return `port ${port} is out of range 0-65535`;
  if (parseIpv4(m[1]!) === undefined) return `${m[1]} is not an IPv4 address`;
  return { host: m[1]!, port };
}
