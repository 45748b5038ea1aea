/**
 * Kernel WireGuard: a device of the kernel's `wireguard` module, created with
 * `ip link add NAME type wireguard` and configured and read with `wg`
 * (wireguard-tools), the same `WireGuardDevice` the agent drives for
 * wireguard-go.
 *
 * Why `wg` and not netlink from Node: the configuration is a generic netlink
 * family (its id resolved at run time, nested peer and allowed-IP attributes,
 * messages split by size); `wg` is the kernel's own reference client for it,
 * the agent runs it only when peers or keys change and to read sessions (not
 * per packet), and Node has no netlink sockets without a native addon.
 *
 * Invariants:
 * - A private key is never on a command line (every user may read those in
 *   /proc): `wg set private-key` reads a file, written 0600 in a fresh 0700
 *   directory and removed right after, also on failure. `/dev/stdin` would not
 *   do: Node's piped stdio are sockets, which cannot be opened by path.
 * - `wg show dump` prints the device's private key on its first line: the
 *   parser skips that line and no error ever quotes the output.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetCommandError, WireGuardError } from './errors.js';
import { run } from './run.js';
import { checkDeviceName, decodeKey, type PeerConfig, type PeerStatus, type WireGuardDevice } from './wireguard.js';

/** Runs a command (`ip` or `wg`) in the device's network namespace; resolves its stdout. */
export type CommandRunner = (argv: string[]) => Promise<string>;

/** The persistent keepalive every peer gets, as with wireguard-go (seconds). */
export const PERSISTENT_KEEPALIVE_S = 25;

/** A runner for `netns` (or the caller's namespace). */
export function commandRunner(netns?: string): CommandRunner {
  return async (argv) => (await run(netns ? ['ip', 'netns', 'exec', netns, ...argv] : argv)).stdout;
}

/**
 * Parses `wg show DEV dump`: the interface's line (private key, public key,
 * port, fwmark: skipped), then one line per peer, tab-separated: public key,
 * preshared key, endpoint, allowed IPs (comma-separated), latest handshake
 * (whole seconds since the epoch, 0: none), bytes received, bytes sent,
 * persistent keepalive. "(none)" marks an absent value.
 */
export function parseWgDump(text: string, ifname = 'device'): PeerStatus[] {
  const lines = text.split('\n').filter((l) => l !== '');
  const out: PeerStatus[] = [];
  for (const [i, line] of lines.entries()) {
    const f = line.split('\t');
    if (i === 0) {
      // Never quoted: it holds the private key.
      if (f.length !== 4) throw new WireGuardError(`Cannot read the peers of WireGuard device ${ifname}: the first line of wg show dump has ${f.length} fields, expected the interface's 4`);
      continue;
    }
    if (f.length !== 8) throw new WireGuardError(`Cannot read the peers of WireGuard device ${ifname}: line ${i + 1} of wg show dump has ${f.length} fields, expected 8`);
    const [publicKey, , endpoint, allowed, handshake, rx, tx] = f as [string, string, string, string, string, string, string];
    const nums = [handshake, rx, tx].map((v) => (/^\d+$/.test(v) ? Number(v) : NaN));
    if (nums.some((n) => !Number.isSafeInteger(n))) throw new WireGuardError(`Cannot read the peers of WireGuard device ${ifname}: line ${i + 1} of wg show dump has a non-numeric handshake or transfer (${JSON.stringify([handshake, rx, tx])})`);
    decodeKey(publicKey, `peer public key on line ${i + 1} of wg show dump of ${ifname}`);
    const p: PeerStatus = { publicKey, allowedIps: allowed === '(none)' ? [] : allowed.split(','), lastHandshakeSec: nums[0]!, rxBytes: nums[1]!, txBytes: nums[2]! };
    if (endpoint !== '(none)') p.endpoint = endpoint;
    out.push(p);
  }
  return out;
}

/** The `wg set` arguments for `peers` and `remove` (no key material but public keys). */
export function wgSetPeerArgs(peers: readonly PeerConfig[], remove: readonly string[], options: { handshakeNow?: boolean } = {}): string[] {
  const args: string[] = [];
  const value = (v: string, what: string): string => {
    // Each is one argument of `wg set`: nothing that could read as a keyword or a list separator.
    if (!/^[0-9A-Fa-f.:[\]/]+$/.test(v)) throw new WireGuardError(`Invalid ${what} ${JSON.stringify(v)}: an address, address:port or CIDR`);
    return v;
  };
  for (const pk of remove) args.push('peer', checkedKey(pk), 'remove');
  // A keepalive interval going from off to on makes the kernel send a keepalive at once, and with
  // no valid session that starts a handshake. Within one peer entry only the last value would
  // reach the kernel, so the "off" is its own entry, before the peer's full one.
  if (options.handshakeNow) for (const p of peers) args.push('peer', checkedKey(p.publicKey), 'persistent-keepalive', 'off');
  for (const p of peers) {
    args.push('peer', checkedKey(p.publicKey), 'endpoint', value(p.endpoint, 'peer endpoint'), 'allowed-ips', p.allowedIps.map((a) => value(a, 'allowed IP')).join(','), 'persistent-keepalive', String(PERSISTENT_KEEPALIVE_S));
  }
  return args;
}

function checkedKey(publicKey: string): string {
  decodeKey(publicKey, 'peer public key');
  return publicKey.trim();
}

/**
 * Runs `fn` with the path of a file holding `key` (base64, 0600, in a fresh
 * 0700 directory), removed when `fn` settles.
 */
export async function withKeyFile<T>(key: Buffer, fn: (path: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-wgkey-'));
  try {
    const path = join(dir, 'private.key');
    writeFileSync(path, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
    return await fn(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A kernel WireGuard device (it must exist: ensureWireGuard creates it). */
export class KernelWireGuard implements WireGuardDevice {
  readonly implementation = 'kernel';
  readonly handshakeResolutionSec = 1;
  private readonly exec: CommandRunner;

  constructor(readonly ifname: string, options: { netns?: string; exec?: CommandRunner } = {}) {
    checkDeviceName(ifname);
    this.exec = options.exec ?? commandRunner(options.netns);
  }

  /** `wg ARGS...`; a failure is a WireGuardError naming the device and what wg said. */
  private async wg(what: string, args: string[]): Promise<string> {
    try {
      return await this.exec(['wg', ...args]);
    } catch (err) {
      const why = err instanceof NetCommandError ? err.stderr.trim() || `exit ${err.exitCode}` : (err as Error).message;
      throw new WireGuardError(`Cannot ${what} of WireGuard device ${this.ifname} (kernel): ${why}`);
    }
  }

  async alive(): Promise<boolean> {
    try {
      const [link] = JSON.parse(await this.exec(['ip', '-d', '-j', 'link', 'show', 'dev', this.ifname])) as Array<{ linkinfo?: { info_kind?: string } }>;
      return link?.linkinfo?.info_kind === 'wireguard';
    } catch {
      return false;
    }
  }

  async configure(privateKey: Buffer, listenPort: number): Promise<void> {
    await withKeyFile(privateKey, (file) => this.wg('set the private key and port', ['set', this.ifname, 'private-key', file, 'listen-port', String(listenPort)]));
  }

  /**
   * The kernel expires the sending half of every session and keeps the
   * receiving half (packets in flight still decrypt); the next send
   * handshakes with the new key.
   */
  async setPrivateKey(privateKey: Buffer): Promise<void> {
    await withKeyFile(privateKey, (file) => this.wg('set the private key', ['set', this.ifname, 'private-key', file]));
  }

  async setPeers(peers: readonly PeerConfig[], remove: readonly string[], options: { handshakeNow?: boolean } = {}): Promise<void> {
    const args = wgSetPeerArgs(peers, remove, options);
    if (args.length > 0) await this.wg('set the peers', ['set', this.ifname, ...args]);
  }

  async peers(): Promise<PeerStatus[]> {
    return parseWgDump(await this.wg('read the peers', ['show', this.ifname, 'dump']), this.ifname);
  }
}
