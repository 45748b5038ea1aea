import assert from 'node:assert/strict';
import { IpsecConfigError, IpsecStateError, NetCommandError } from './errors.js';
import {
  canonicalCidr,
  canonicalIp,
  checkPeer,
  deriveSaKey,
  generateMeshKey,
  ipsecSpi,
  keyIdOfSpi,
  nextKeyId,
  parseMeshKey,
  parseXfrmStates,
  Xfrm,
  type IpsecPeer,
  type XfrmRunner,
} from './xfrm.js';

const MESH = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
const A = '192.168.77.1';
const B = '192.168.77.2';
const C = '192.168.77.3';

const isConfigError = (re: RegExp) => (e: unknown) => e instanceof IpsecConfigError && e.code === 'WEFT_ERR_IPSEC_CONFIG' && re.test(e.message);
const isStateError = (re: RegExp) => (e: unknown) => e instanceof IpsecStateError && e.code === 'WEFT_ERR_IPSEC_STATE' && re.test(e.message);

describe('IPsec mesh keys', () => {
  it('accepts 64 hex characters or 32 bytes and keeps the key id', () => {
    const k = parseMeshKey(MESH.toUpperCase(), 3);
    assert.equal(k.keyId, 3);
    assert.equal(k.secret.toString('hex'), MESH);
    assert.deepEqual(parseMeshKey(Buffer.from(MESH, 'hex'), 3), k);
    assert.match(generateMeshKey(), /^[0-9a-f]{64}$/);
    assert.notEqual(generateMeshKey(), generateMeshKey());
  });

  it('refuses malformed mesh keys and key ids, saying what is wrong', () => {
    assert.throws(() => parseMeshKey('zz' + MESH.slice(2), 1), isConfigError(/not hex/));
    assert.throws(() => parseMeshKey(MESH.slice(2), 1), isConfigError(/62 hex characters, not 64/));
    assert.throws(() => parseMeshKey(Buffer.alloc(16, 1), 1), isConfigError(/16 bytes, not 32/));
    assert.throws(() => parseMeshKey('0'.repeat(64), 1), isConfigError(/all zeros/));
    for (const bad of [0, 16, 1.5, -1, NaN]) assert.throws(() => parseMeshKey(MESH, bad), isConfigError(/key id .* from 1 to 15/));
    assert.throws(() => parseMeshKey(MESH, '2' as unknown as number), isConfigError(/key id "2"/));
  });

  it('cycles key ids 1..15', () => {
    assert.equal(nextKeyId(1), 2);
    assert.equal(nextKeyId(14), 15);
    assert.equal(nextKeyId(15), 1);
    assert.throws(() => nextKeyId(0), IpsecConfigError);
  });
});

describe('IPsec SPIs', () => {
  it('carry the key id in the low 4 bits and stay at 0x100 or above', () => {
    for (let id = 1; id <= 15; id++) {
      const spi = ipsecSpi(A, B, id);
      assert.equal(spi & 0xf, id);
      assert.equal(keyIdOfSpi(spi), id);
      assert.ok(spi >= 0x100 && spi <= 0xffffffff);
      assert.equal(spi >>> 4, ipsecSpi(A, B, 1) >>> 4, 'the key id changes only the low bits');
    }
  });

  it('differ per direction and per pair, and are the same on both ends', () => {
    assert.notEqual(ipsecSpi(A, B, 1), ipsecSpi(B, A, 1));
    assert.notEqual(ipsecSpi(A, B, 1), ipsecSpi(C, B, 1), 'two senders to one receiver');
    assert.equal(ipsecSpi(A, B, 7), ipsecSpi(A, B, 7));
    // IPv6 spelled two ways is one address.
    assert.equal(ipsecSpi('2001:db8::1', '2001:db8::2', 1), ipsecSpi('2001:0DB8:0:0:0:0:0:1', '2001:db8:0::2', 1));
  });

  it('spread the senders to one receiver without collisions', () => {
    const seen = new Set<number>();
    for (let i = 1; i <= 1000; i++) seen.add(ipsecSpi(`10.${i >> 8}.${i & 255}.9`, '10.200.0.1', 1));
    assert.equal(seen.size, 1000);
  });

  it('refuse SPIs without a key id and pairs that are not pairs', () => {
    assert.throws(() => keyIdOfSpi(0x1230), isConfigError(/low 4 bits .* are 0/));
    assert.throws(() => keyIdOfSpi(0x12), isConfigError(/from 256/));
    assert.throws(() => keyIdOfSpi(2 ** 32), isConfigError(/from 256/));
    assert.throws(() => ipsecSpi(A, A, 1), isConfigError(/both 192.168.77.1/));
    assert.throws(() => ipsecSpi('192.168.77.256', B, 1), isConfigError(/source IP "192.168.77.256"/));
  });
});

describe('IPsec SA keys', () => {
  const mesh = parseMeshKey(MESH, 1);

  it('are 20 bytes, pinned for a known input (a change breaks nodes of different versions)', () => {
    const key = deriveSaKey(mesh, A, B);
    assert.equal(key.length, 20);
    assert.equal(ipsecSpi(A, B, 1), 0x93cc14e1);
    assert.equal(key.toString('hex'), KNOWN_A_TO_B_KEY1);
  });

  it('differ per direction, pair, key id and mesh key', () => {
    const keys = [
      deriveSaKey(mesh, A, B),
      deriveSaKey(mesh, B, A),
      deriveSaKey(mesh, A, C),
      deriveSaKey(mesh, C, B),
      deriveSaKey(parseMeshKey(MESH, 2), A, B),
      deriveSaKey(parseMeshKey('ff' + MESH.slice(2), 1), A, B),
    ].map((k) => k.toString('hex'));
    assert.equal(new Set(keys).size, keys.length);
    // Salts too: no two SAs share a nonce space.
    assert.equal(new Set(keys.map((k) => k.slice(32))).size, keys.length);
  });
});

// Computed outside the code under test, from the derivation the module comment describes:
// SPI 0x93cc14e1, HKDF-SHA256(ikm mesh 00..1f, salt "weft-ipsec-v1",
// info "weft-ipsec-v1 rfc4106(gcm(aes)) icv=128 192.168.77.1>192.168.77.2 keyid=1 spi=0x93cc14e1"), 20 bytes.
const KNOWN_A_TO_B_KEY1 = 'a6f96c798f1e73ff6b88dd9bc42e5b92f31b03f5';

describe('IPsec inputs', () => {
  it('canonicalises IPs and CIDRs as ip prints them', () => {
    assert.equal(canonicalIp('2001:DB8:0:0::1'), '2001:db8::1');
    assert.equal(canonicalIp('10.0.0.1'), '10.0.0.1');
    assert.equal(canonicalCidr('10.77.1.0/24'), '10.77.1.0/24');
    assert.equal(canonicalCidr('2001:DB8::/32'), '2001:db8::/32');
    assert.equal(canonicalCidr('10.77.1.1/32'), '10.77.1.1/32');
    assert.equal(canonicalCidr('0.0.0.0/0'), '0.0.0.0/0');
  });

  it('refuses bad IPs and CIDRs, quoting them', () => {
    assert.throws(() => canonicalIp('fe80::1%eth0', 'node IP'), isConfigError(/node IP "fe80::1%eth0"/));
    assert.throws(() => canonicalIp('10.1.1', 'node IP'), isConfigError(/not an IPv4 or IPv6 address/));
    assert.throws(() => canonicalCidr('10.77.1.1/24'), isConfigError(/host bits are set \(did you mean 10.77.1.0\/24\?\)/));
    assert.throws(() => canonicalCidr('2001:db8::1/64'), isConfigError(/did you mean 2001:db8::\/64/));
    assert.throws(() => canonicalCidr('10.0.0.0/33'), isConfigError(/prefix 33 is longer than 32/));
    assert.throws(() => canonicalCidr('10.0.0.0'), isConfigError(/expected ADDRESS\/PREFIX/));
  });

  it('checks a peer as a whole', () => {
    const ok: IpsecPeer = { localIp: A, remoteIp: B, localCidrs: ['10.77.1.0/24'], remoteCidrs: ['10.77.2.0/24'] };
    assert.deepEqual(checkPeer(ok), ok);
    assert.throws(() => checkPeer({ ...ok, remoteIp: A }), isConfigError(/both 192.168.77.1/));
    assert.throws(() => checkPeer({ ...ok, remoteIp: '2001:db8::2' }), isConfigError(/different families/));
    assert.throws(() => checkPeer({ ...ok, remoteCidrs: [] }), isConfigError(/no remote CIDR/));
    assert.throws(() => checkPeer({ ...ok, localCidrs: ['10.77.1.5/24'] }), isConfigError(/local CIDR "10.77.1.5\/24": host bits/));
  });
});

describe('parseXfrmStates', () => {
  it('reads `ip -s xfrm state list nokeys` with counters', () => {
    const states = parseXfrmStates(SAMPLE_STATS);
    assert.equal(states.length, 2);
    assert.deepEqual(states[0], {
      src: B,
      dst: A,
      proto: 'esp',
      spi: 0x2001,
      keyId: 1,
      reqid: 1,
      mode: 'tunnel',
      aead: 'rfc4106(gcm(aes))',
      icvBits: 128,
      bytes: 252,
      packets: 3,
      replayWindowDrops: 0,
      replayDrops: 2,
      integrityFailures: 5,
    });
    assert.equal(states[1]!.spi, 0x1002);
    assert.equal(states[1]!.keyId, 2);
    assert.equal(states[1]!.packets, 300);
  });

  it('reads plain `ip xfrm state get` output (with the key, which it does not keep)', () => {
    const [s] = parseXfrmStates(SAMPLE_GET);
    assert.equal(s!.spi, 0x1001);
    assert.equal(s!.aead, 'rfc4106(gcm(aes))');
    assert.equal(s!.icvBits, 128);
    assert.equal(s!.bytes, 0);
    assert.ok(!JSON.stringify(s).includes('0102030405'), 'no key material in the result');
  });

  it('is empty for no states and refuses output it does not understand', () => {
    assert.deepEqual(parseXfrmStates(''), []);
    assert.throws(() => parseXfrmStates('src 1.2.3.4 dst 5.6.7.8\n\tsomething else\n'), isStateError(/unexpected output "src 1.2.3.4 dst 5.6.7.8"/));
  });
});

/**
 * The kernel's XFRM tables as far as `ip xfrm` shows them: SAs keyed by
 * (dst, SPI) like the kernel's lookup, policies by (selector, dir).
 */
class FakeXfrm implements XfrmRunner {
  readonly sas = new Map<string, { src: string; dst: string; spi: number; key: string; reqid: number }>();
  readonly policies = new Map<string, number>();
  readonly argvs: string[][] = [];

  async batch(commands: string[][]): Promise<void> {
    for (const c of commands) this.apply(c, true);
  }

  async run(args: string[]): Promise<string> {
    this.argvs.push(args);
    return this.apply(args, false);
  }

  private fail(args: string[], stderr: string): never {
    throw new NetCommandError(['ip', ...args], 2, stderr);
  }

  private apply(a: string[], batched: boolean): string {
    const opt = (name: string): string => a[a.indexOf(name) + 1]!;
    const cmd = a.filter((w) => w !== '-s').slice(0, 3).join(' ');
    switch (cmd) {
      case 'xfrm state add': {
        const id = `${opt('dst')}/${parseInt(opt('spi'), 16)}`;
        if (this.sas.has(id)) this.fail(['-batch', '-'], 'RTNETLINK answers: File exists\nCommand failed -:1\n');
        this.sas.set(id, { src: opt('src'), dst: opt('dst'), spi: parseInt(opt('spi'), 16), key: a[a.indexOf('aead') + 2]!, reqid: Number(opt('reqid')) });
        return '';
      }
      case 'xfrm state get': {
        const sa = this.sas.get(`${opt('dst')}/${parseInt(opt('spi'), 16)}`);
        if (!sa) this.fail(a, 'RTNETLINK answers: No such process\n');
        return `src ${sa.src} dst ${sa.dst}\n\tproto esp spi 0x${sa.spi.toString(16).padStart(8, '0')} reqid ${sa.reqid} mode tunnel\n\treplay-window 0 \n\taead rfc4106(gcm(aes)) ${sa.key} 128\n`;
      }
      case 'xfrm state delete': {
        if (!this.sas.delete(`${opt('dst')}/${parseInt(opt('spi'), 16)}`)) this.fail(a, 'RTNETLINK answers: No such process\n');
        return '';
      }
      case 'xfrm state deleteall': {
        for (const [id, sa] of this.sas) if (sa.src === opt('src') && sa.dst === opt('dst')) this.sas.delete(id);
        return '';
      }
      case 'xfrm state list':
        return [...this.sas.values()].map((sa) => `src ${sa.src} dst ${sa.dst}\n\tproto esp spi 0x${sa.spi.toString(16).padStart(8, '0')}(${sa.spi}) reqid ${sa.reqid}(0x00000001) mode tunnel\n\taead rfc4106(gcm(aes)) <<Keys hidden>> 128\n`).join('');
      case 'xfrm policy update': {
        assert.ok(batched, 'policies go through the batch');
        const i = a.indexOf('spi');
        this.policies.set(`${opt('src')} ${opt('dst')} ${opt('dir')}`, i < 0 ? 0 : parseInt(a[i + 1]!, 16));
        return '';
      }
      case 'xfrm policy get': {
        const spi = this.policies.get(`${opt('src')} ${opt('dst')} ${opt('dir')}`);
        if (spi === undefined) this.fail(a, 'RTNETLINK answers: No such file or directory\n');
        return `src ${opt('src')} dst ${opt('dst')} \n\tdir ${opt('dir')} priority 0 ptype main \n\ttmpl src x dst y\n\t\tproto esp spi 0x${spi.toString(16).padStart(8, '0')} reqid 1 mode tunnel\n`;
      }
      case 'xfrm policy delete': {
        if (!this.policies.delete(`${opt('src')} ${opt('dst')} ${opt('dir')}`)) this.fail(a, 'RTNETLINK answers: No such file or directory\n');
        return '';
      }
      default:
        throw new Error(`FakeXfrm: unexpected ip ${a.join(' ')}`);
    }
  }
}

describe('Xfrm (against an in-memory XFRM table)', () => {
  const peerA: IpsecPeer = { localIp: A, remoteIp: B, localCidrs: ['10.77.1.0/24'], remoteCidrs: ['10.77.2.0/24', '10.78.2.0/24'] };
  const k1 = parseMeshKey(MESH, 1);
  const k2 = parseMeshKey(generateMeshKey(), 2);
  let fake: FakeXfrm;
  let xfrm: Xfrm;
  beforeEach(() => {
    fake = new FakeXfrm();
    xfrm = new Xfrm({ ip: fake });
  });

  it('installs both SAs and out/in/fwd policies per CIDR pair, the out policy pinned to the SPI', async () => {
    await xfrm.install(peerA, k1);
    assert.deepEqual([...fake.sas.keys()].sort(), [`${A}/${ipsecSpi(B, A, 1)}`, `${B}/${ipsecSpi(A, B, 1)}`].sort());
    assert.equal(fake.sas.get(`${B}/${ipsecSpi(A, B, 1)}`)!.key, `0x${deriveSaKey(k1, A, B).toString('hex')}`);
    assert.equal(fake.policies.size, 6);
    assert.equal(fake.policies.get(`10.77.1.0/24 10.78.2.0/24 out`), ipsecSpi(A, B, 1));
    assert.equal(fake.policies.get(`10.78.2.0/24 10.77.1.0/24 in`), 0);
    assert.equal(fake.policies.get(`10.77.2.0/24 10.77.1.0/24 fwd`), 0);
    assert.ok(!fake.argvs.flat().some((w) => w.includes(deriveSaKey(k1, A, B).toString('hex'))), 'SA keys never go on a command line');
  });

  it('is idempotent, and refuses a changed key under the same key id', async () => {
    await xfrm.install(peerA, k1);
    await xfrm.install(peerA, k1);
    assert.equal(fake.sas.size, 2);
    await assert.rejects(xfrm.install(peerA, parseMeshKey(generateMeshKey(), 1)), isStateError(/exists with another key or settings \(a new mesh key needs a new key id\)/));
  });

  it('reports an SPI collision with another sender', async () => {
    // Another node's SA sitting on the SPI this peer's inbound SA needs.
    fake.sas.set(`${A}/${ipsecSpi(B, A, 1)}`, { src: C, dst: A, spi: ipsecSpi(B, A, 1), key: '0x00', reqid: 1 });
    await assert.rejects(xfrm.addInbound(peerA, k1), isStateError(/from 192.168.77.3 .* SPI collision/));
  });

  it('rotates make-before-break: new inbound, switch outbound, remove the old key', async () => {
    await xfrm.install(peerA, k1);
    await xfrm.addInbound(peerA, k2);
    assert.equal(fake.sas.size, 3);
    await assert.rejects(xfrm.removeKey(peerA, 1), isStateError(/still sends under it/));
    await xfrm.switchOutbound(peerA, k2);
    assert.equal(fake.policies.get(`10.77.1.0/24 10.77.2.0/24 out`), ipsecSpi(A, B, 2));
    await assert.rejects(xfrm.removeKey(peerA, 2), isStateError(/key id 2 .* still sends under it/));
    await xfrm.removeKey(peerA, 1);
    await xfrm.removeKey(peerA, 1);
    assert.deepEqual([...fake.sas.values()].map((s) => s.spi & 0xf), [2, 2]);
    const states = await xfrm.states();
    assert.deepEqual(states.map((s) => s.keyId), [2, 2]);
  });

  it('removes a peer completely, also twice', async () => {
    await xfrm.install(peerA, k1);
    await xfrm.addInbound(peerA, k2);
    await xfrm.removePeer(peerA);
    await xfrm.removePeer(peerA);
    assert.equal(fake.sas.size, 0);
    assert.equal(fake.policies.size, 0);
  });

  it('validates before touching the kernel', async () => {
    await assert.rejects(xfrm.install({ ...peerA, remoteIp: 'node-b' }, k1), isConfigError(/remote node IP "node-b"/));
    await assert.rejects(xfrm.removeKey(peerA, 0), isConfigError(/key id 0/));
    assert.throws(() => new Xfrm({ reqid: 0 }), isConfigError(/reqid 0/));
    assert.equal(fake.sas.size + fake.policies.size + fake.argvs.length, 0);
  });
});

// Recorded in the kernel lane (Debian 6.1, iproute2 6.1); counters edited to be distinguishable.
const SAMPLE_STATS = `src 192.168.77.2 dst 192.168.77.1
\tproto esp spi 0x00002001(8193) reqid 1(0x00000001) mode tunnel
\treplay-window 0 seq 0x00000000 flag  (0x00000000)
\taead rfc4106(gcm(aes)) <<Keys hidden>> 128
\tanti-replay esn context:
\t seq-hi 0x0, seq 0x3, oseq-hi 0x0, oseq 0x0
\t replay_window 128, bitmap-length 4
\t 00000000 00000000 00000000 00000007 
\tsel src 0.0.0.0/0 dst 0.0.0.0/0 uid 0
\tlifetime config:
\t  limit: soft (INF)(bytes), hard (INF)(bytes)
\t  limit: soft (INF)(packets), hard (INF)(packets)
\t  expire add: soft 0(sec), hard 0(sec)
\t  expire use: soft 0(sec), hard 0(sec)
\tlifetime current:
\t  252(bytes), 3(packets)
\t  add 2026-12-02 00:18:28 use 2026-12-02 00:18:30
\tstats:
\t  replay-window 0 replay 2 failed 5
src 192.168.77.1 dst 192.168.77.2
\tproto esp spi 0x00001002(4098) reqid 1(0x00000001) mode tunnel
\treplay-window 0 seq 0x00000000 flag  (0x00000000)
\taead rfc4106(gcm(aes)) <<Keys hidden>> 128
\tanti-replay esn context:
\t seq-hi 0x0, seq 0x0, oseq-hi 0x0, oseq 0x12c
\t replay_window 128, bitmap-length 4
\t 00000000 00000000 00000000 00000000 
\tsel src 0.0.0.0/0 dst 0.0.0.0/0 uid 0
\tlifetime config:
\t  limit: soft (INF)(bytes), hard (INF)(bytes)
\t  limit: soft (INF)(packets), hard (INF)(packets)
\t  expire add: soft 0(sec), hard 0(sec)
\t  expire use: soft 0(sec), hard 0(sec)
\tlifetime current:
\t  25200(bytes), 300(packets)
\t  add 2026-12-02 00:18:24 use 2026-12-02 00:18:30
\tstats:
\t  replay-window 0 replay 0 failed 0
`;

const SAMPLE_GET = `src 192.168.77.1 dst 192.168.77.2
\tproto esp spi 0x00001001 reqid 1 mode tunnel
\treplay-window 0 
\taead rfc4106(gcm(aes)) 0x0102030405060708090a0b0c0d0e0f1011121314 128
\tanti-replay esn context:
\t seq-hi 0x0, seq 0x0, oseq-hi 0x0, oseq 0x3
\t replay_window 64, bitmap-length 2
\t 00000000 00000000 
\tsel src 0.0.0.0/0 dst 0.0.0.0/0 
`;
