import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BpfMap } from './bpf-map.js';
import { BpfObject } from './bpf-object.js';
import { ensureBpffs } from './bpffs.js';
import { BpfLoadError, BpfSyscallError } from './errors.js';
import { RingBufferReader } from './ringbuf.js';
import { encodeIpcacheKey, encodeIpcacheValue, decodeIpcache } from './maps/codec.js';
import { IPCACHE_KEY, IPCACHE_VALUE } from './maps/layout.js';

const TESTDATA = join(__dirname, '..', 'testdata');
const BUILD = join(__dirname, '..', '..', '..', 'bpf', 'build');

function compile(name: string, outDir: string): string {
  const out = join(outDir, `${name}.o`);
  execFileSync('clang', ['-O2', '-g', '-target', 'bpf', '-I', '/usr/include/x86_64-linux-gnu', '-c', join(TESTDATA, `${name}.c`), '-o', out]);
  return out;
}

describe('BPF loader, maps, tc and ring buffer (root)', function () {
  this.timeout(60_000);
  const tag = randomBytes(3).toString('hex');
  const pinRoot = `/sys/fs/bpf/wtdp-${tag}`;
  const ns = `wtdp-${tag}`;
  let dir: string;

  before(function () {
    if (process.getuid?.() !== 0) return this.skip();
    ensureBpffs();
    dir = mkdtempSync(join(tmpdir(), 'weft-dp-'));
  });
  after(() => {
    if (process.getuid?.() !== 0) return;
    spawnSync('ip', ['netns', 'del', ns]);
    rmSync(pinRoot, { recursive: true, force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('reports a verifier rejection with the verifier log', () => {
    const obj = BpfObject.open(compile('rejected', dir), { programs: ['unchecked_read'] });
    try {
      assert.throws(() => obj.load(), (err: unknown) => {
        assert.ok(err instanceof BpfLoadError);
        assert.equal(err.code, 'WEFT_ERR_BPF_LOAD');
        assert.match(err.message, /--- verifier log ---/);
        assert.match(err.log, /invalid access to packet|R\d+ (offset is outside|invalid mem access)/);
        return true;
      });
    } finally {
      obj.close();
    }
  });

  it('loads the datapath objects sharing pinned maps, and batch-updates an LPM trie', () => {
    const lxc = BpfObject.open(join(BUILD, 'bpf_lxc.o'), { pinRoot, programs: ['from_container', 'to_container'] });
    const overlay = BpfObject.open(join(BUILD, 'bpf_overlay.o'), { pinRoot, programs: ['from_overlay'] });
    try {
      lxc.load();
      overlay.load();
      assert.ok(lxc.programFd('from_container') > 0 && overlay.programFd('from_overlay') > 0);
      const ipcache = lxc.map('weft_ipcache');
      const n = 2000;
      const keys = Buffer.alloc(n * IPCACHE_KEY.size);
      const values = Buffer.alloc(n * IPCACHE_VALUE.size);
      for (let i = 0; i < n; i++) {
        encodeIpcacheKey(keys, i * IPCACHE_KEY.size, 0x0afa0000 + i, 32);
        encodeIpcacheValue(values, i * IPCACHE_VALUE.size, { identity: 70_000 + i, tunnelIp: 0, flags: 0, clusterId: 1 });
      }
      ipcache.updateBatch(keys, values, n);
      // The overlay object sees the same map, and so does anyone opening the pin.
      const probe = keys.subarray(7 * IPCACHE_KEY.size, 8 * IPCACHE_KEY.size);
      assert.equal(decodeIpcache(probe, overlay.map('weft_ipcache').lookup(probe)!).identity, 70_007);
      const pinned = BpfMap.openPinned(join(pinRoot, 'weft_ipcache'));
      assert.equal(pinned.keySize, IPCACHE_KEY.size);
      assert.equal([...pinned.keys()].length, n);
      assert.equal(pinned.delete(probe), true);
      assert.equal(pinned.lookup(probe), undefined);
      assert.equal(pinned.delete(probe), false);
      assert.throws(() => pinned.update(Buffer.alloc(3), Buffer.alloc(16)), /key is 3 bytes, expected 8/);
      pinned.close();
    } finally {
      lxc.close();
      overlay.close();
    }
  });

  it('counts real packets with a tc program on a veth in a namespace, and streams ring buffer records', () => {
    const obj = compile('counter', dir);
    const testPins = join(pinRoot, 'counter');
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['-n', ns, 'link', 'add', 'wta', 'type', 'veth', 'peer', 'name', 'wtb']);
    execFileSync('ip', ['-n', ns, 'addr', 'add', '10.250.0.1/30', 'dev', 'wta']);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'wta', 'up']);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'wtb', 'up']);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    // Attach from inside the namespace (tc attach works on the caller's namespace). nsenter --net,
    // not `ip netns exec`: the latter remounts /sys, hiding the BPF filesystem under it.
    const inNs = (script: string): string => execFileSync('nsenter', [`--net=/var/run/netns/${ns}`, '--', process.execPath, '-e', script], { encoding: 'utf8', timeout: 20_000 });
    const attach = `
      const { BpfObject, attachTc, queryTc, detachTc } = require(${JSON.stringify(join(__dirname, 'index.js'))});
      const o = BpfObject.open(${JSON.stringify(obj)}, { pinRoot: ${JSON.stringify(testPins)} });
      o.load();
      const ifindex = Number(JSON.parse(require('child_process').execFileSync('ip', ['-j', 'link', 'show', 'wtb']))[0].ifindex);
      attachTc({ ifindex, direction: 'ingress', programFd: o.programFd('count_packets') });
      process.stdout.write(String(queryTc({ ifindex, direction: 'ingress' }) > 0));
    `;
    assert.equal(inNs(attach), 'true');
    const counter = BpfMap.openPinned(join(testPins, 'test_counter'));
    // Pings from wta to a neighbour on its /30 arrive at wtb's ingress (ARP first).
    spawnSync('ip', ['netns', 'exec', ns, 'ping', '-c', '3', '-i', '0.2', '-W', '1', '10.250.0.2']);
    const packets = counter.lookup(Buffer.alloc(4))!.readBigUInt64LE(0);
    assert.ok(packets >= 3n, `counted ${packets} packets`);
    counter.close();
    const detach = `
      const { detachTc, queryTc } = require(${JSON.stringify(join(__dirname, 'index.js'))});
      const ifindex = Number(JSON.parse(require('child_process').execFileSync('ip', ['-j', 'link', 'show', 'wtb']))[0].ifindex);
      detachTc({ ifindex, direction: 'ingress' });
      process.stdout.write(String(queryTc({ ifindex, direction: 'ingress' })));
    `;
    assert.equal(inNs(detach), 'undefined');
  });

  it('delivers ring buffer records and copies them out', () => {
    const obj = BpfObject.open(compile('counter', dir), { pinRoot: join(pinRoot, 'rb') });
    try {
      obj.load();
      const reader = new RingBufferReader(obj.map('test_events').fd);
      assert.equal(reader.consume(() => assert.fail('no record yet')), 0);
      reader.stop();
    } finally {
      obj.close();
    }
  });

  it('raises a typed error naming the map and errno', () => {
    const lxc = BpfObject.open(join(BUILD, 'bpf_lxc.o'), { pinRoot });
    try {
      lxc.load();
      const endpoints = lxc.map('weft_endpoints');
      assert.throws(() => endpoints.update(Buffer.alloc(4), Buffer.alloc(28), 2 /* BPF_EXIST */), (err: unknown) => {
        assert.ok(err instanceof BpfSyscallError);
        assert.match(err.message, /Cannot update map weft_endpoints: ENOENT \(2\)/);
        return true;
      });
    } finally {
      lxc.close();
    }
  });
});
