/**
 * IPsec between nodes: ESP in tunnel mode with rfc4106(gcm(aes)) and a
 * 128-bit ICV, as XFRM states and policies set through `ip xfrm`, one `Xfrm`
 * per network namespace (like `Ip`).
 *
 * Keys. The mesh shares one secret, the mesh key (32 random bytes, 64 hex
 * characters), with a key id 1-15 that changes on every rotation. Every node
 * pair and direction gets its own SA key: HKDF-SHA256 over the mesh key, with
 * the sender's and receiver's IPs (in that order), the key id and the SPI in
 * the info, 20 bytes out (AES-128 key + the 4-byte salt RFC 4106 puts in front
 * of each nonce). So no two pairs or directions share a key or a nonce space,
 * although every SA's ESP sequence numbers (the rest of the nonce) start at 1;
 * both ends compute the same key for a direction without exchanging anything.
 *
 * SPIs. The kernel finds an inbound SA by (destination, SPI, protocol), not by
 * source, so at one receiver the SPI must tell its senders apart: the low 4
 * bits carry the key id, the upper 28 bits a hash of (source, destination),
 * never below 0x100 (1-255 are reserved). Two senders colliding at one
 * receiver (odds about n^2 / 2^29 for n peers) make the kernel refuse the
 * second SA, reported as IpsecStateError, never a silently shared SA.
 *
 * Rotation, make-before-break, per peer: addInbound(new key) on every node
 * (receivers ready), then switchOutbound(new key) (the out policy names the
 * SPI, so the switch is one policy update), then removeKey(old id) once every
 * peer has switched. Everything is idempotent: a state already present with
 * the same key is kept; one with a different key under the same SPI is an
 * error (a new mesh key needs a new key id), never silently replaced.
 *
 * SA keys reach `ip` on its standard input (`ip -batch -`), never on a
 * command line other processes can read, and never appear in errors or in
 * what `states()` returns.
 */
import { createHash, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import { IpsecConfigError, IpsecStateError, NetCommandError } from './errors.js';
import { Ip } from './ip.js';

export const IPSEC_AEAD = 'rfc4106(gcm(aes))';
export const IPSEC_ICV_BITS = 128;
/** AES-128 key (16) + RFC 4106 salt (4). */
export const IPSEC_SA_KEY_BYTES = 20;
export const MESH_KEY_BYTES = 32;
export const MIN_KEY_ID = 1;
/** The key id lives in the SPI's low 4 bits; 0 means "no key". */
export const MAX_KEY_ID = 15;
/** Inbound anti-replay window in packets; wide enough for reordering on a busy link. */
export const IPSEC_REPLAY_WINDOW = 128;
// Changing either changes every derived key: a new wire format, never an edit.
const HKDF_SALT = Buffer.from('weft-ipsec-v1');
const SPI_DOMAIN = 'weft-ipsec-spi-v1';

export interface MeshKey {
  readonly keyId: number;
  readonly secret: Buffer;
}

/** One peer as seen from this node. */
export interface IpsecPeer {
  /** This node's underlay IP: the outer source of what it sends to the peer. */
  localIp: string;
  remoteIp: string;
  /** Inner ranges behind this node (its pod CIDR): sent to the peer encrypted. */
  localCidrs: string[];
  /** Inner ranges behind the peer. */
  remoteCidrs: string[];
}

export interface XfrmStateInfo {
  src: string;
  dst: string;
  proto: string;
  spi: number;
  /** The SPI's low 4 bits: Weft's key id (0 for an SA Weft did not make). */
  keyId: number;
  reqid: number;
  mode: string;
  /** AEAD algorithm name, when the SA uses one. */
  aead?: string;
  icvBits?: number;
  /** Bytes and packets through the SA (plaintext sizes); 0 when the listing had no counters. */
  bytes: number;
  packets: number;
  /** Packets dropped as outside the replay window, as replays, and for a failed integrity check. */
  replayWindowDrops: number;
  replayDrops: number;
  integrityFailures: number;
}

/** The part of `Ip` this module needs: a fake records commands in tests. */
export interface XfrmRunner {
  run(args: string[]): Promise<string>;
  batch(commands: string[][]): Promise<void>;
}

/** A new random mesh key, as 64 hex characters. */
export function generateMeshKey(): string {
  return randomBytes(MESH_KEY_BYTES).toString('hex');
}

/** The key id after `keyId`: 1, 2, ... 15, 1, ... */
export function nextKeyId(keyId: number): number {
  _checkKeyId(keyId);
  return (keyId % MAX_KEY_ID) + 1;
}

/** Validates a mesh key (64 hex characters or 32 bytes) and its key id. */
export function parseMeshKey(secret: string | Buffer, keyId: number): MeshKey {
  _checkKeyId(keyId);
  let bytes: Buffer;
  if (typeof secret === 'string') {
    const t = secret.trim();
    if (!/^[0-9a-fA-F]*$/.test(t)) throw new IpsecConfigError('Invalid mesh key: it is not hex (a mesh key is 32 random bytes as 64 hex characters)');
    if (t.length !== MESH_KEY_BYTES * 2) throw new IpsecConfigError(`Invalid mesh key: ${t.length} hex characters, not ${MESH_KEY_BYTES * 2} (32 random bytes)`);
    bytes = Buffer.from(t, 'hex');
  } else {
    if (secret.length !== MESH_KEY_BYTES) throw new IpsecConfigError(`Invalid mesh key: ${secret.length} bytes, not ${MESH_KEY_BYTES}`);
    bytes = Buffer.from(secret);
  }
  if (bytes.every((b) => b === 0)) throw new IpsecConfigError('Invalid mesh key: it is all zeros');
  return { keyId, secret: bytes };
}

/** The SPI of the SA carrying src -> dst traffic under `keyId`; see the module comment. */
export function ipsecSpi(src: string, dst: string, keyId: number): number {
  _checkKeyId(keyId);
  const s = canonicalIp(src, 'source IP');
  const d = canonicalIp(dst, 'destination IP');
  if (s === d) throw new IpsecConfigError(`Invalid IPsec pair: source and destination are both ${s}`);
  let hi = createHash('sha256').update(`${SPI_DOMAIN}\0${s}\0${d}`).digest().readUInt32BE(0) >>> 4;
  if (hi < 0x10) hi += 0x10; // keeps the SPI at 0x100 or above
  return hi * 16 + keyId;
}

/** The key id an SPI made by ipsecSpi() carries. */
export function keyIdOfSpi(spi: number): number {
  if (!Number.isInteger(spi) || spi < 0x100 || spi > 0xffffffff) throw new IpsecConfigError(`Invalid SPI ${spi}: it must be an integer from 256 to 4294967295`);
  const keyId = spi & 0xf;
  if (keyId < MIN_KEY_ID) throw new IpsecConfigError(`Invalid SPI 0x${spi.toString(16)}: its low 4 bits (the key id) are 0`);
  return keyId;
}

/** The 20-byte SA key for src -> dst under `mesh`. */
export function deriveSaKey(mesh: MeshKey, src: string, dst: string): Buffer {
  const spi = ipsecSpi(src, dst, mesh.keyId);
  const info = `weft-ipsec-v1 ${IPSEC_AEAD} icv=${IPSEC_ICV_BITS} ${canonicalIp(src, 'source IP')}>${canonicalIp(dst, 'destination IP')} keyid=${mesh.keyId} spi=${_hexSpi(spi)}`;
  return Buffer.from(hkdfSync('sha256', mesh.secret, HKDF_SALT, info, IPSEC_SA_KEY_BYTES));
}

/** An IP in the form `ip` prints it (IPv6 compressed, lower case); `what` names it in the error. */
export function canonicalIp(ip: string, what = 'IP'): string {
  // isIP() takes IPv6 zone ids ("%eth0"): node addresses have none.
  if (typeof ip !== 'string' || !isIP(ip) || ip.includes('%')) throw new IpsecConfigError(`Invalid ${what} ${JSON.stringify(ip)}: not an IPv4 or IPv6 address`);
  if (isIP(ip) === 4) return ip;
  // WHATWG URL serialises IPv6 canonically (RFC 5952).
  return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
}

/** A CIDR with its host bits zero, as `ip` prints it; `what` names it in the error. */
export function canonicalCidr(cidr: string, what = 'CIDR'): string {
  const m = typeof cidr === 'string' ? /^([^/]+)\/(\d{1,3})$/.exec(cidr) : null;
  if (!m || !isIP(m[1]!)) throw new IpsecConfigError(`Invalid ${what} ${JSON.stringify(cidr)}: expected ADDRESS/PREFIX`);
  const ip = canonicalIp(m[1]!, what);
  const bits = isIP(ip) === 4 ? 32 : 128;
  const prefix = Number(m[2]);
  if (prefix > bits) throw new IpsecConfigError(`Invalid ${what} ${JSON.stringify(cidr)}: prefix ${prefix} is longer than ${bits}`);
  const value = _ipToBigInt(ip);
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  if (value & hostMask) throw new IpsecConfigError(`Invalid ${what} ${JSON.stringify(cidr)}: host bits are set (did you mean ${_bigIntToIp(value & ~hostMask, bits)}/${prefix}?)`);
  return `${ip}/${prefix}`;
}

/** Validates a peer; returns it with canonical addresses. */
export function checkPeer(peer: IpsecPeer): IpsecPeer {
  const localIp = canonicalIp(peer.localIp, 'local node IP');
  const remoteIp = canonicalIp(peer.remoteIp, 'remote node IP');
  if (localIp === remoteIp) throw new IpsecConfigError(`Invalid IPsec peer: local and remote node IP are both ${localIp}`);
  if (isIP(localIp) !== isIP(remoteIp)) throw new IpsecConfigError(`Invalid IPsec peer: local node IP ${localIp} and remote node IP ${remoteIp} are of different families`);
  const cidrs = (list: string[], what: string): string[] => {
    if (!Array.isArray(list) || list.length === 0) throw new IpsecConfigError(`Invalid IPsec peer ${remoteIp}: no ${what}`);
    return list.map((c) => canonicalCidr(c, what));
  };
  return { localIp, remoteIp, localCidrs: cidrs(peer.localCidrs, 'local CIDR'), remoteCidrs: cidrs(peer.remoteCidrs, 'remote CIDR') };
}

/**
 * Parses `ip [-s] xfrm state [list nokeys]` output. Counters are 0 when the
 * listing has none (without -s). A block that does not start as expected is
 * an error: counters silently read as 0 would hide traffic.
 */
export function parseXfrmStates(text: string): XfrmStateInfo[] {
  const states: XfrmStateInfo[] = [];
  const blocks = text.split(/^(?=src )/m).filter((b) => b.trim() !== '');
  for (const block of blocks) {
    const head = /^src (\S+) dst (\S+)\s*\n\s*proto (\S+) spi 0x([0-9a-f]+)(?:\(\d+\))? reqid (\d+)(?:\(0x[0-9a-f]+\))? mode (\S+)/.exec(block);
    if (!head) throw new IpsecStateError(`Cannot read XFRM states: unexpected output ${JSON.stringify(block.split('\n')[0])}`);
    const spi = parseInt(head[4]!, 16);
    const state: XfrmStateInfo = {
      src: head[1]!,
      dst: head[2]!,
      proto: head[3]!,
      spi,
      keyId: spi & 0xf,
      reqid: Number(head[5]),
      mode: head[6]!,
      bytes: 0,
      packets: 0,
      replayWindowDrops: 0,
      replayDrops: 0,
      integrityFailures: 0,
    };
    // "aead NAME 0xKEY [(N bits)] ICV" or, with nokeys, "aead NAME <<Keys hidden>> ICV".
    const aead = /^\s*aead (\S+) .*\s(\d+)\s*$/m.exec(block);
    if (aead) {
      state.aead = aead[1]!;
      state.icvBits = Number(aead[2]);
    }
    const current = /lifetime current:\s*\n\s*(\d+)\(bytes\), (\d+)\(packets\)/.exec(block);
    if (current) {
      state.bytes = Number(current[1]);
      state.packets = Number(current[2]);
    }
    const stats = /stats:\s*\n\s*replay-window (\d+) replay (\d+) failed (\d+)/.exec(block);
    if (stats) {
      state.replayWindowDrops = Number(stats[1]);
      state.replayDrops = Number(stats[2]);
      state.integrityFailures = Number(stats[3]);
    }
    states.push(state);
  }
  return states;
}

/** The XFRM side of IPsec in one network namespace (or the caller's). */
export class Xfrm {
  readonly reqid: number;
  private readonly ip: XfrmRunner;

  constructor(options: { netns?: string; reqid?: number; ip?: XfrmRunner } = {}) {
    this.reqid = options.reqid ?? 1;
    if (!Number.isInteger(this.reqid) || this.reqid < 1 || this.reqid > 0xffffffff) throw new IpsecConfigError(`Invalid reqid ${options.reqid}: an integer from 1 to 4294967295`);
    this.ip = options.ip ?? new Ip(options.netns);
  }

  /** A peer from nothing: its inbound SA, its outbound SA and the policies. */
  async install(peer: IpsecPeer, key: MeshKey): Promise<void> {
    await this.addInbound(peer, key);
    await this.switchOutbound(peer, key);
  }

  /** Rotation step 1: accept the peer's traffic under `key` (and keep accepting older keys). */
  async addInbound(peer: IpsecPeer, key: MeshKey): Promise<void> {
    const p = checkPeer(peer);
    await this.addState(p.remoteIp, p.localIp, key);
  }

  /**
   * Rotation step 2: send under `key`. Adds the outbound SA, then points the
   * out policies at its SPI (one update each: packets never meet a policy
   * without an SA), and makes sure the in and fwd policies exist.
   */
  async switchOutbound(peer: IpsecPeer, key: MeshKey): Promise<void> {
    const p = checkPeer(peer);
    await this.addState(p.localIp, p.remoteIp, key);
    const spi = ipsecSpi(p.localIp, p.remoteIp, key.keyId);
    const commands: string[][] = [];
    for (const local of p.localCidrs) {
      for (const remote of p.remoteCidrs) {
        commands.push(this.policyArgs('out', local, remote, p.localIp, p.remoteIp, spi));
        // In and fwd name no SPI: during a rotation both keys' packets must pass.
        commands.push(this.policyArgs('in', remote, local, p.remoteIp, p.localIp));
        commands.push(this.policyArgs('fwd', remote, local, p.remoteIp, p.localIp));
      }
    }
    await this.ip.batch(commands);
  }

  /**
   * Rotation step 3: removes both SAs of `keyId` with this peer. Refused while
   * an out policy still sends under it: that would drop traffic.
   */
  async removeKey(peer: IpsecPeer, keyId: number): Promise<void> {
    const p = checkPeer(peer);
    const out = ipsecSpi(p.localIp, p.remoteIp, keyId);
    for (const local of p.localCidrs) {
      for (const remote of p.remoteCidrs) {
        const pinned = await this.outboundSpi(local, remote);
        if (pinned === out) throw new IpsecStateError(`Cannot remove key id ${keyId} for peer ${p.remoteIp}: the out policy ${local} -> ${remote} still sends under it (switch outbound to the new key first)`);
      }
    }
    await this.deleteIdempotent(['xfrm', 'state', 'delete', 'src', p.localIp, 'dst', p.remoteIp, 'proto', 'esp', 'spi', _hexSpi(out)]);
    await this.deleteIdempotent(['xfrm', 'state', 'delete', 'src', p.remoteIp, 'dst', p.localIp, 'proto', 'esp', 'spi', _hexSpi(ipsecSpi(p.remoteIp, p.localIp, keyId))]);
  }

  /** Removes the peer's policies, then every SA between the two nodes, whatever its key id. */
  async removePeer(peer: IpsecPeer): Promise<void> {
    const p = checkPeer(peer);
    for (const local of p.localCidrs) {
      for (const remote of p.remoteCidrs) {
        await this.deleteIdempotent(['xfrm', 'policy', 'delete', 'src', local, 'dst', remote, 'dir', 'out']);
        await this.deleteIdempotent(['xfrm', 'policy', 'delete', 'src', remote, 'dst', local, 'dir', 'in']);
        await this.deleteIdempotent(['xfrm', 'policy', 'delete', 'src', remote, 'dst', local, 'dir', 'fwd']);
      }
    }
    await this.ip.run(['xfrm', 'state', 'deleteall', 'src', p.localIp, 'dst', p.remoteIp, 'proto', 'esp']);
    await this.ip.run(['xfrm', 'state', 'deleteall', 'src', p.remoteIp, 'dst', p.localIp, 'proto', 'esp']);
  }

  /**
   * Checks that this kernel can do what install() needs (ESP with the AEAD):
   * adds and deletes a throwaway SA between two loopback addresses under a
   * reserved SPI. Throws IpsecConfigError naming what the kernel answered.
   */
  async probe(): Promise<void> {
    const spi = '0x000000ff';
    const zeros = `0x${'00'.repeat(IPSEC_SA_KEY_BYTES - 1)}01`;
    try {
      await this.ip.batch([['xfrm', 'state', 'add', 'src', '127.0.0.1', 'dst', '127.0.0.2', 'proto', 'esp', 'spi', spi, 'mode', 'tunnel', 'aead', IPSEC_AEAD, zeros, String(IPSEC_ICV_BITS)]]);
    } catch (err) {
      const why = (err instanceof NetCommandError ? err.stderr.trim() : (err as Error).message).replace(/\.$/, '');
      throw new IpsecConfigError(`This kernel cannot do IPsec (ESP with ${IPSEC_AEAD}): ${why}. Use WireGuard, or a kernel with esp4 and gcm (the kernel lane has them, docs/kernel-lane.md)`);
    }
    await this.deleteIdempotent(['xfrm', 'state', 'delete', 'src', '127.0.0.1', 'dst', '127.0.0.2', 'proto', 'esp', 'spi', spi]);
  }

  /** Every SA in the namespace with its counters (keys left out). */
  async states(): Promise<XfrmStateInfo[]> {
    return parseXfrmStates(await this.ip.run(['-s', 'xfrm', 'state', 'list', 'nokeys']));
  }

  /** Adds the src -> dst SA of `key`; an identical one already there is kept. */
  private async addState(src: string, dst: string, key: MeshKey): Promise<void> {
    const spi = ipsecSpi(src, dst, key.keyId);
    const saKey = deriveSaKey(key, src, dst);
    const add = ['xfrm', 'state', 'add', 'src', src, 'dst', dst, 'proto', 'esp', 'spi', _hexSpi(spi), 'reqid', String(this.reqid), 'mode', 'tunnel', 'replay-window', String(IPSEC_REPLAY_WINDOW), 'aead', IPSEC_AEAD, `0x${saKey.toString('hex')}`, String(IPSEC_ICV_BITS)];
    try {
      await this.ip.batch([add]);
      return;
    } catch (err) {
      if (!(err instanceof NetCommandError && /File exists/.test(err.stderr))) throw err;
    }
    // The kernel looks an SA up by (dst, SPI): what is there may be another sender's.
    const existing = await this.ip.run(['xfrm', 'state', 'get', 'src', src, 'dst', dst, 'proto', 'esp', 'spi', _hexSpi(spi)]);
    const [state] = parseXfrmStates(existing);
    if (!state || state.src !== src) {
      throw new IpsecStateError(`Cannot add the IPsec SA ${src} -> ${dst} (SPI ${_hexSpi(spi)}): an SA from ${state?.src ?? 'another node'} to ${dst} already has this SPI (an SPI collision between two peers)`);
    }
    const have = /^\s*aead \S+ 0x([0-9a-f]+)/m.exec(existing)?.[1];
    const same = have !== undefined && have.length === saKey.length * 2 && timingSafeEqual(Buffer.from(have, 'hex'), saKey);
    if (!same || state.aead !== IPSEC_AEAD || state.icvBits !== IPSEC_ICV_BITS || state.reqid !== this.reqid || state.mode !== 'tunnel') {
      throw new IpsecStateError(`Cannot add the IPsec SA ${src} -> ${dst} with key id ${key.keyId}: an SA with SPI ${_hexSpi(spi)} exists with another key or settings (a new mesh key needs a new key id)`);
    }
  }

  /** The SPI the out policy for local -> remote sends under, if it names one. */
  private async outboundSpi(local: string, remote: string): Promise<number | undefined> {
    let text: string;
    try {
      text = await this.ip.run(['xfrm', 'policy', 'get', 'src', local, 'dst', remote, 'dir', 'out']);
    } catch (err) {
      if (err instanceof NetCommandError && GONE.test(err.stderr)) return undefined;
      throw err;
    }
    const m = /\btmpl\b[\s\S]*?\bspi 0x([0-9a-f]+)/.exec(text);
    const spi = m ? parseInt(m[1]!, 16) : 0;
    return spi === 0 ? undefined : spi;
  }

  private policyArgs(dir: 'out' | 'in' | 'fwd', selSrc: string, selDst: string, tmplSrc: string, tmplDst: string, spi?: number): string[] {
    const args = ['xfrm', 'policy', 'update', 'src', selSrc, 'dst', selDst, 'dir', dir, 'tmpl', 'src', tmplSrc, 'dst', tmplDst, 'proto', 'esp'];
    if (spi !== undefined) args.push('spi', _hexSpi(spi));
    args.push('reqid', String(this.reqid), 'mode', 'tunnel');
    return args;
  }

  private async deleteIdempotent(args: string[]): Promise<void> {
    try {
      await this.ip.run(args);
    } catch (err) {
      if (err instanceof NetCommandError && GONE.test(err.stderr)) return;
      throw err;
    }
  }
}

// What `ip xfrm` says when the SA or policy to delete or read is not there.
const GONE = /No such process|No such file or directory/;

function _checkKeyId(keyId: number): void {
  if (!Number.isInteger(keyId) || keyId < MIN_KEY_ID || keyId > MAX_KEY_ID) throw new IpsecConfigError(`Invalid IPsec key id ${JSON.stringify(keyId)}: an integer from ${MIN_KEY_ID} to ${MAX_KEY_ID}`);
}

function _hexSpi(spi: number): string {
  return `0x${spi.toString(16).padStart(8, '0')}`;
}

function _ipToBigInt(ip: string): bigint {
  if (isIP(ip) === 4) return ip.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
  // Canonical IPv6 (see canonicalIp): hex groups, at most one "::".
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

function _bigIntToIp(value: bigint, bits: number): string {
  if (bits === 32) return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join('.');
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((value >> BigInt(i * 16)) & 0xffffn).toString(16));
  return canonicalIp(groups.join(':'));
}
