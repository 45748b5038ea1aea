/**
 * WireGuard: node key pairs, the device interface the agent drives
 * (`WireGuardDevice`), and the userspace implementation's UAPI. The kernel
 * implementation is in kernel-wireguard.ts; ensure-wireguard.ts picks one.
 *
 * Keys are Curve25519 (X25519), 32 bytes, base64 on disk and in node records
 * as `wg` prints them. The private key file is created with mode 0600 and is
 * refused if anyone else may read it, if it does not decode to exactly 32
 * bytes, or if it is not base64: a broken key is an error, never replaced
 * silently (that would change the node's identity to its peers).
 *
 * wireguard-go serves the cross-platform UAPI on
 * /var/run/wireguard/<ifname>.sock (whatever the network namespace; device
 * names must be unique per machine): "set=1" with key=value lines, or
 * "get=1", each answered with "errno=N". Keys travel in hex there.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { WireGuardError, WireGuardKeyError } from './errors.js';
import { run } from './run.js';

export const WG_KEY_BYTES = 32;
export const WG_RUN_DIR = '/var/run/wireguard';
/** wireguard-go's CPU priority (nice): the datapath before the control plane. */
export const WIREGUARD_GO_NICE = -10;
/** The kernel's and wireguard-go's limit (IFNAMSIZ - 1). */
export const MAX_IFNAME = 15;

// PKCS#8 and SPKI DER prefixes of an X25519 key (RFC 8410): the raw 32 bytes follow.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

/** Decodes a base64 WireGuard key; `what` names it in the error. */
export function decodeKey(text: string, what: string): Buffer {
  const t = text.trim();
  if (!/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/.test(t)) {
    const raw = /^[A-Za-z0-9+/]*={0,2}$/.test(t) ? Buffer.from(t, 'base64') : undefined;
    const why = raw === undefined ? 'is not base64' : `decodes to ${raw.length} bytes, not ${WG_KEY_BYTES}`;
    throw new WireGuardKeyError(`${what} ${why} (a WireGuard key is 32 bytes, base64, 44 characters)`);
  }
  return Buffer.from(t, 'base64');
}

export function publicKeyOf(privateKey: Buffer): Buffer {
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, privateKey]), format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(key).export({ format: 'der', type: 'spki' });
  return spki.subarray(SPKI_PREFIX.length);
}

export function generatePrivateKey(): Buffer {
  const { privateKey } = generateKeyPairSync('x25519');
  return privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(PKCS8_PREFIX.length);
}

export interface NodeKeys {
  privateKey: Buffer;
  publicKey: Buffer;
  /** base64, as published. */
  publicKeyText: string;
}

/**
 * The node's key pair from `path`, created (0600) if absent. A present but
 * unusable file is an error naming the file and what is wrong with it.
 */
export function loadOrCreateNodeKey(path: string): NodeKeys {
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // Created with 0600 ('wx': never over another file), so the key is never readable by others.
    writeFileSync(path, generatePrivateKey().toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
    chmodSync(path, 0o600);
  }
  const mode = statSync(path).mode & 0o777;
  if (mode & 0o077) throw new WireGuardKeyError(`private key file ${path} has mode ${mode.toString(8)}: it must not be readable by group or others (chmod 600)`);
  const privateKey = decodeKey(readFileSync(path, 'utf8'), `private key file ${path}`);
  const publicKey = publicKeyOf(privateKey);
  return { privateKey, publicKey, publicKeyText: publicKey.toString('base64') };
}

/**
 * A fresh key pair written over `path` atomically (a new file beside it,
 * 0600, renamed over the old one): after a crash the file holds either the
 * old key or the new one, never a torn one.
 */
export function replaceNodeKey(path: string): NodeKeys {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.new`;
  writeFileSync(tmp, generatePrivateKey().toString('base64') + '\n', { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
  return loadOrCreateNodeKey(path);
}

export interface PeerConfig {
  /** base64 public key. */
  publicKey: string;
  /** host:port of the peer's WireGuard socket. */
  endpoint: string;
  allowedIps: string[];
}

export interface PeerStatus {
  publicKey: string;
  endpoint?: string;
  allowedIps: string[];
  /**
   * The latest handshake, seconds since the epoch (0: none yet). wireguard-go
   * reports nanoseconds; the kernel (`wg show dump`) whole seconds, so a
   * handshake shown as second S happened in [S, S+1).
   */
  lastHandshakeSec: number;
  rxBytes: number;
  txBytes: number;
}

/** Where a device's WireGuard runs: the kernel module, or wireguard-go. */
export type WireGuardImplementation = 'kernel' | 'userspace';

/**
 * One WireGuard device, whichever implementation runs it: what the agent
 * needs to configure a lane and read its sessions.
 */
export interface WireGuardDevice {
  readonly ifname: string;
  readonly implementation: WireGuardImplementation;
  /**
   * The resolution of PeerStatus.lastHandshakeSec: a handshake reported as H
   * happened in [H, H + resolution). 1 for the kernel (`wg show dump` prints
   * whole seconds), 1e-9 for wireguard-go.
   */
  readonly handshakeResolutionSec: number;
  /** Whether the device exists and answers. */
  alive(): Promise<boolean>;
  /** Sets the private key and the UDP port; peers are kept. */
  configure(privateKey: Buffer, listenPort: number): Promise<void>;
  /**
   * A new private key. Both implementations keep their sessions' receive
   * keys (packets already on their way still decrypt) and start a handshake
   * with the new key at the next send.
   */
  setPrivateKey(privateKey: Buffer): Promise<void>;
  /**
   * Adds or updates `peers` (endpoint, allowed IPs replaced, persistent
   * keepalive 25 s) and removes the public keys in `remove`, in one step.
   * `handshakeNow`: make each listed peer start a handshake at once (after a
   * private key change) rather than at its next keepalive.
   */
  setPeers(peers: readonly PeerConfig[], remove: readonly string[], options?: { handshakeNow?: boolean }): Promise<void>;
  /** The device's peers, with their latest handshake and byte counters. */
  peers(): Promise<PeerStatus[]>;
}

/** Refuses a device name neither implementation can have (IFNAMSIZ; no path characters). */
export function checkDeviceName(ifname: string): void {
  if (ifname.length === 0 || ifname.length > MAX_IFNAME || !/^[A-Za-z0-9_.-]+$/.test(ifname)) throw new WireGuardError(`Invalid WireGuard device name ${JSON.stringify(ifname)}: 1-${MAX_IFNAME} characters of A-Z a-z 0-9 _ . -`);
}

/**
 * Starts wireguard-go for `ifname` in the current network namespace (or
 * `netns`), unless its UAPI socket already answers (a restarted agent keeps
 * the running device and its peers). wireguard-go detaches on its own, so the
 * device outlives the agent like the BPF programs do.
 */
export async function ensureWireGuardGo(ifname: string, options: { netns?: string; timeoutMs?: number } = {}): Promise<WireGuardUapi> {
  const uapi = new WireGuardUapi(ifname);
  if (await uapi.alive()) return uapi;
  // It carries every encrypted packet of the node: ahead of control-plane work and pods for the CPU (a
  // burst of agent or etcd work must not leave its socket buffers to overflow). With the kernel's
  // autogroups a nice value ranks a process only within its session's group, and every session's
  // group weighs the same: in the agent's session wireguard-go would share one group's weight with the
  // agent. So it gets a session of its own whose group has the same priority (writing the autogroup's
  // nice needs CAP_SYS_NICE; where it is refused, or there are no autogroups, the process nice remains).
  const wg = ['setsid', 'sh', '-c', `echo ${WIREGUARD_GO_NICE} > /proc/self/autogroup 2>/dev/null; exec "$@"`, 'wireguard-go', 'nice', '-n', String(WIREGUARD_GO_NICE), 'wireguard-go', ifname];
  const argv = options.netns ? ['ip', 'netns', 'exec', options.netns, ...wg] : wg;
  try {
    await run(argv);
  } catch (err) {
    throw new WireGuardError(`Cannot start wireguard-go for ${ifname}: ${(err as Error).message}; is the wireguard-go package installed?`);
  }
  const deadline = Date.now() + (options.timeoutMs ?? 5000);
  while (!(await uapi.alive())) {
    if (Date.now() > deadline) throw new WireGuardError(`wireguard-go for ${ifname} started but ${uapi.socketPath} does not answer`);
    await new Promise((res) => setTimeout(res, 50));
  }
  return uapi;
}

function _checkUapiValue(ifname: string, what: string, value: string): void {
  if (typeof value !== 'string' || !/^[\x21-\x7e]+$/.test(value)) throw new WireGuardError(`WireGuard device ${ifname}: refusing peer ${what} ${JSON.stringify(value)}: not printable ASCII without whitespace`);
}

/** A wireguard-go device's UAPI socket. */
export class WireGuardUapi implements WireGuardDevice {
  readonly implementation = 'userspace';
  readonly handshakeResolutionSec = 1e-9;

  constructor(readonly ifname: string) {
    checkDeviceName(ifname);
  }

  get socketPath(): string {
    return join(WG_RUN_DIR, `${this.ifname}.sock`);
  }

  /** Sends one request; resolves the response lines (errno checked). */
  request(body: string, timeoutMs = 5000): Promise<string[]> {
    return new Promise((resolve, reject) => {
      const sock = connect(this.socketPath);
      let out = '';
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new WireGuardError(`WireGuard device ${this.ifname}: no answer on ${this.socketPath} within ${timeoutMs} ms`));
      }, timeoutMs);
      sock.on('data', (d) => {
        out += d.toString();
        if (!out.endsWith('\n\n')) return;
        clearTimeout(timer);
        sock.end();
        const lines = out.trim().split('\n');
        const errno = lines.find((l) => l.startsWith('errno='));
        if (errno !== 'errno=0') return reject(new WireGuardError(`WireGuard device ${this.ifname} refused the request: ${errno ?? 'no errno'}`));
        resolve(lines.filter((l) => !l.startsWith('errno=')));
      });
      sock.on('error', (err) => {
        clearTimeout(timer);
        reject(new WireGuardError(`WireGuard device ${this.ifname}: cannot reach ${this.socketPath}: ${err.message}`));
      });
      sock.write(body.endsWith('\n\n') ? body : `${body}\n\n`);
    });
  }

  /** Whether the device's UAPI socket answers. */
  async alive(): Promise<boolean> {
    if (!existsSync(this.socketPath)) return false;
    try {
      await this.request('get=1\n', 1000);
      return true;
    } catch {
      return false;
    }
  }

  async configure(privateKey: Buffer, listenPort: number): Promise<void> {
    await this.request(`set=1\nprivate_key=${privateKey.toString('hex')}\nlisten_port=${listenPort}\n`);
  }

  /**
   * A new private key for the device. wireguard-go keeps its sessions'
   * receive keys (packets already on their way still decrypt) and makes the
   * next send start a handshake with the new key.
   */
  async setPrivateKey(privateKey: Buffer): Promise<void> {
    await this.request(`set=1\nprivate_key=${privateKey.toString('hex')}\n`);
  }

  /**
   * Adds or updates peers and removes the ones not listed, in one request.
   * Every peer keeps a session up (persistent keepalive), so traffic moved
   * onto it finds one. `handshakeNow`: switching the keepalive off and on
   * makes wireguard-go send one at once, which starts a handshake (after a
   * private key change, rather than at the next keepalive).
   */
  async setPeers(peers: readonly PeerConfig[], remove: readonly string[], options: { handshakeNow?: boolean } = {}): Promise<void> {
    // The UAPI is line-based text: a newline in a value would be a second, unchecked key=value line.
    for (const p of peers) for (const [what, v] of [['endpoint', p.endpoint], ...p.allowedIps.map((a) => ['allowed IP', a])] as const) _checkUapiValue(this.ifname, what, v);
    const lines = ['set=1'];
    for (const pk of remove) lines.push(`public_key=${decodeKey(pk, 'peer public key').toString('hex')}`, 'remove=true');
    for (const p of peers) {
      lines.push(`public_key=${decodeKey(p.publicKey, 'peer public key').toString('hex')}`, `endpoint=${p.endpoint}`, 'replace_allowed_ips=true', ...p.allowedIps.map((a) => `allowed_ip=${a}`));
      if (options.handshakeNow) lines.push('persistent_keepalive_interval=0');
      lines.push('persistent_keepalive_interval=25');
    }
    if (lines.length > 1) await this.request(lines.join('\n') + '\n');
  }

  async peers(): Promise<PeerStatus[]> {
    const out: PeerStatus[] = [];
    let cur: PeerStatus | undefined;
    for (const line of await this.request('get=1\n')) {
      const i = line.indexOf('=');
      const [k, v] = [line.slice(0, i), line.slice(i + 1)];
      if (k === 'public_key') {
        cur = { publicKey: Buffer.from(v, 'hex').toString('base64'), allowedIps: [], lastHandshakeSec: 0, rxBytes: 0, txBytes: 0 };
        out.push(cur);
      } else if (cur) {
        if (k === 'endpoint') cur.endpoint = v;
        else if (k === 'allowed_ip') cur.allowedIps.push(v);
        else if (k === 'last_handshake_time_sec') cur.lastHandshakeSec += Number(v);
        else if (k === 'last_handshake_time_nsec') cur.lastHandshakeSec += Number(v) / 1e9;
        else if (k === 'rx_bytes') cur.rxBytes = Number(v);
        else if (k === 'tx_bytes') cur.txBytes = Number(v);
      }
    }
    return out;
  }
}
