/**
 * The loader against the real kernel: needs root (bpf(2), bpffs, network
 * namespaces) and clang. Everything a test creates is named wtdp-<random>
 * (pin roots under /sys/fs/bpf, namespaces, links) and removed in the hooks,
 * also when the test fails. Traffic only flows between two namespaces the
 * test creates; the host's interfaces and routes are never touched.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BpfMap, BPF_EXIST, BPF_NOEXIST, BpfMapType } from './bpf-map.js';
import { BpfObject } from './bpf-object.js';
import { ensureBpffs } from './bpffs.js';
import { BpfLoadError, BpfSyscallError } from './errors.js';
import { RingBufferReader } from './ringbuf.js';
import { testRunTc } from './test-run.js';

const IS_ROOT = process.getuid?.() === 0;
const TESTDATA = join(__dirname, '..', 'testdata');
const DIST_INDEX = join(__dirname, 'index.js');

function compile(dir: string, name: string, defines: string[] = []): string {
  const out = join(dir, `${name}${defines.length ? `-${defines.length}` : ''}.o`);
  execFileSync('clang', ['-O2', '-g', '-target', 'bpf', '-c', '-I', '/usr/include/x86_64-linux-gnu', ...defines.map((d) => `-D${d}`), join(TESTDATA, `${name}.c`), '-o', out], { stdio: 'pipe' });
  return out;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

/** struct wtdp_lpm_key: prefix length (host order), IPv4 address (network order). */
function lpmKey(addr: number, prefixlen: number, out = Buffer.alloc(8), offset = 0): Buffer {
  out.writeUInt32LE(prefixlen, offset);
  out.writeUInt32BE(addr >>> 0, offset + 4);
  return out;
}

/** The kernel's id of a program descriptor of this process. */
function progId(fd: number): number {
  const m = /^prog_id:\s*(\d+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  assert.ok(m, `fd ${fd} is not a BPF program`);
  return Number(m[1]);
}

describe('datapath on the kernel (root)', function () {
  this.timeout(60_000);
  const tag = randomBytes(4).toString('hex');
  let dir = '';
  let pinSeq = 0;
  /** Undo actions of the running test, run in reverse order after it, pass or fail. */
  const cleanups: Array<() => void> = [];

  before(function () {
    if (!IS_ROOT) {
      console.log('    (skipped: these tests need root for bpf(2), bpffs pins and network namespaces)');
      return this.skip();
    }
    ensureBpffs();
    dir = mkdtempSync(join(tmpdir(), `wtdp-${tag}-`));
  });

  afterEach(() => {
    for (let undo = cleanups.pop(); undo; undo = cleanups.pop()) {
      try {
        undo();
      } catch {
        // Keep cleaning up; the test's own failure is the one to report.
      }
    }
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A fresh pin root, removed with everything pinned in it after the test. */
  function pinRoot(): string {
    const root = `/sys/fs/bpf/wtdp-${tag}-${++pinSeq}`;
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    return root;
  }

  function openObject(path: string, root?: string): BpfObject {
    const obj = BpfObject.open(path, root === undefined ? {} : { pinRoot: root });
    cleanups.push(() => obj.close());
    return obj;
  }

  describe('loading', () => {
    it('rejects an unverifiable program with the verifier log in the error', () => {
      const obj = openObject(compile(dir, 'rejected'), pinRoot());
      assert.throws(() => obj.load(), (err: unknown) => {
        assert.ok(err instanceof BpfLoadError);
        assert.equal(err.code, 'WEFT_ERR_BPF_LOAD');
        assert.match(err.message, /^Cannot load program unchecked_read of BPF object .*rejected\.o: EACCES \(13\) \(the verifier rejected it\)/);
        assert.match(err.message, /--- verifier log ---\n(.*\n)*invalid access to packet/);
        assert.match(err.log, /R1 offset is outside of the packet/);
        assert.ok(err.libbpfMessages.some((m) => m.includes("prog 'unchecked_read': BPF program load failed")), err.libbpfMessages.join('\n'));
        assert.equal(err.errno, 13);
        return true;
      });
    });

    it('lists programs and maps and hands out descriptors once loaded', () => {
      const obj = openObject(compile(dir, 'maps'), pinRoot());
      assert.deepEqual(obj.programNames(), ['touch_maps']);
      assert.deepEqual(new Set(obj.mapNames()), new Set(['wtdp_hash', 'wtdp_trie', 'wtdp_small', 'wtdp_percpu']));
      assert.throws(() => obj.programFd('touch_maps'), /not loaded: call load\(\) first/);
      obj.load();
      assert.ok(obj.programFd('touch_maps') > 0);
      assert.ok(progId(obj.programFd('touch_maps')) > 0);
      assert.equal(obj.map('wtdp_hash'), obj.map('wtdp_hash'));
      assert.throws(() => obj.map('nope'), (err: unknown) => err instanceof BpfLoadError && /has no map "nope"; it has .*wtdp_hash/.test(err.message));
      assert.throws(() => obj.programFd('nope'), /has no program "nope"; it has touch_maps/);
      const trie = obj.map('wtdp_trie');
      assert.deepEqual([trie.type, trie.keySize, trie.valueSize, trie.maxEntries], [BpfMapType.LPM_TRIE, 8, 4, 65536]);
    });

    it('refuses a pin root outside a BPF filesystem', () => {
      assert.throws(() => BpfObject.open(compile(dir, 'maps'), { pinRoot: join(dir, 'not-bpffs') }), /the pin root .* is not in a BPF filesystem/);
    });

    it('stops working once closed instead of using stale descriptors', () => {
      const obj = BpfObject.open(compile(dir, 'maps'), { pinRoot: pinRoot() });
      obj.load();
      const hash = obj.map('wtdp_hash');
      obj.close();
      obj.close();
      assert.equal(hash.isClosed, true);
      assert.throws(() => hash.update(u32(1), u32(1)), (err: unknown) => err instanceof BpfSyscallError && err.message === 'Cannot update map wtdp_hash: EBADF (9): the map was closed');
      assert.throws(() => obj.programFd('touch_maps'), /it is closed/);
    });
  });

  describe('maps', () => {
    let obj: BpfObject;
    beforeEach(() => {
      obj = openObject(compile(dir, 'maps'), pinRoot());
      obj.load();
    });

    it('reads, writes, deletes and iterates a hash map', () => {
      const hash = obj.map('wtdp_hash');
      assert.equal(hash.lookup(u32(1)), undefined);
      for (let i = 1; i <= 100; i++) hash.update(u32(i), u32(i * 10));
      assert.deepEqual(hash.lookup(u32(7)), u32(70));
      const out = Buffer.alloc(4);
      assert.equal(hash.lookupInto(u32(8), out), true);
      assert.equal(out.readUInt32LE(), 80);
      assert.equal(hash.lookupInto(u32(1000), out), false);
      hash.update(u32(7), u32(77), BPF_EXIST);
      assert.deepEqual(hash.lookup(u32(7)), u32(77));
      assert.throws(() => hash.update(u32(7), u32(1), BPF_NOEXIST), (err: unknown) => {
        assert.ok(err instanceof BpfSyscallError);
        assert.equal(err.message, 'Cannot update map wtdp_hash: EEXIST (17)');
        assert.equal(err.errno, 17);
        return true;
      });
      assert.throws(() => hash.update(u32(5000), u32(1), BPF_EXIST), /Cannot update map wtdp_hash: ENOENT \(2\)/);
      assert.equal(hash.delete(u32(7)), true);
      assert.equal(hash.delete(u32(7)), false);
      assert.equal(hash.lookup(u32(7)), undefined);
      const keys = [...hash.keys()].map((k) => k.readUInt32LE());
      assert.deepEqual(keys.sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => i + 1).filter((k) => k !== 7));
      const entries = hash.entries();
      assert.equal(entries.length, 99);
      for (const [k, v] of entries) assert.equal(v.readUInt32LE(), k.readUInt32LE() * 10);
    });

    it('checks key and value sizes before the syscall', () => {
      const hash = obj.map('wtdp_hash');
      assert.throws(() => hash.update(Buffer.alloc(3), u32(1)), (err: unknown) => err instanceof RangeError && err.message === 'Map wtdp_hash: key is 3 bytes, expected 4');
      assert.throws(() => hash.update(u32(1), Buffer.alloc(8)), /Map wtdp_hash: value is 8 bytes, expected 4/);
      assert.throws(() => hash.lookup(Buffer.alloc(5)), /key is 5 bytes, expected 4/);
      assert.throws(() => hash.delete(Buffer.alloc(0)), /key is 0 bytes, expected 4/);
      assert.throws(() => hash.updateBatch(Buffer.alloc(8), Buffer.alloc(4), 2), /a batch of 2 needs 8 key bytes and 8 value bytes, got 8 and 4/);
    });

    it('reports a full hash map as E2BIG, naming the map', () => {
      const small = obj.map('wtdp_small');
      small.update(u32(1), Buffer.alloc(8));
      small.update(u32(2), Buffer.alloc(8));
      assert.throws(() => small.update(u32(3), Buffer.alloc(8)), (err: unknown) => {
        assert.ok(err instanceof BpfSyscallError);
        assert.equal(err.code, 'WEFT_ERR_BPF_SYSCALL');
        assert.equal(err.message, 'Cannot update map wtdp_small: E2BIG (7)');
        return true;
      });
      small.delete(u32(2));
      assert.throws(() => small.updateBatch(Buffer.concat([u32(4), u32(5), u32(6)]), Buffer.alloc(24), 3), /Cannot batch-update map wtdp_small: E2BIG \(7\): 1 of 3 entries written/);
      assert.deepEqual(small.lookup(u32(4)), Buffer.alloc(8));
    });

    it('batch-updates a hash map in one syscall', () => {
      const hash = obj.map('wtdp_hash');
      const n = 20_000;
      const keys = Buffer.alloc(n * 4);
      const values = Buffer.alloc(n * 4);
      for (let i = 0; i < n; i++) {
        keys.writeUInt32LE(100_000 + i, i * 4);
        values.writeUInt32LE(i, i * 4);
      }
      assert.equal(hash.batchMode, 'unknown');
      hash.updateBatch(keys, values, n);
      assert.equal(hash.batchMode, 'batched');
      assert.equal([...hash.keys()].length, n);
      assert.deepEqual(hash.lookup(u32(100_000 + 12_345)), u32(12_345));
      // Again over existing keys: BPF_ANY replaces.
      for (let i = 0; i < n; i++) values.writeUInt32LE(i + 1, i * 4);
      hash.updateBatch(keys, values, n);
      assert.deepEqual(hash.lookup(u32(100_000 + 12_345)), u32(12_346));
      hash.updateBatch(Buffer.alloc(0), Buffer.alloc(0), 0);
    });

    it('reads a hash map in batches, undisturbed by deletes of what it already yielded', () => {
      const hash = obj.map('wtdp_hash');
      const n = 10_000;
      const keys = Buffer.alloc(n * 4);
      const values = Buffer.alloc(n * 4);
      for (let i = 0; i < n; i++) {
        keys.writeUInt32LE(i + 1, i * 4);
        values.writeUInt32LE((i + 1) * 3, i * 4);
      }
      hash.updateBatch(keys, values, n);
      const seen = new Map<number, number>();
      let chunks = 0;
      for (const c of hash.lookupBatches(1000)) {
        chunks++;
        assert.ok(c.count <= 1000);
        for (let i = 0; i < c.count; i++) seen.set(c.keys.readUInt32LE(i * 4), c.values.readUInt32LE(i * 4));
      }
      assert.equal(seen.size, n, 'every entry once');
      assert.ok(chunks >= 10, `${chunks} chunks`);
      for (const [k, v] of seen) assert.equal(v, k * 3);
      let walked = 0;
      for (const c of hash.lookupBatches(512)) {
        walked += c.count;
        assert.equal(hash.deleteBatch(c.keys.subarray(0, c.count * 4), c.count), c.count);
      }
      assert.equal(walked, n);
      assert.equal([...hash.keys()].length, 0);
      assert.deepEqual([...hash.lookupBatches()], [], 'an empty map yields nothing');
      assert.throws(() => [...hash.lookupBatches(0)], /batch chunk 0 is not a positive integer/);
    });

    it('batch-updates an LPM trie and looks up by longest prefix', function () {
      const trie = obj.map('wtdp_trie');
      const n = 5000;
      const keys = Buffer.alloc((n + 1) * 8);
      const values = Buffer.alloc((n + 1) * 4);
      for (let i = 0; i < n; i++) {
        lpmKey(0x0afa0000 + i, 32, keys, i * 8);
        values.writeUInt32LE(70_000 + i, i * 4);
      }
      lpmKey(0x0a000000, 8, keys, n * 8); // 10.0.0.0/8
      values.writeUInt32LE(2, n * 4);
      trie.updateBatch(keys, values, n + 1);
      // Which path this kernel took: the generic batch op (trees since ~5.x) or one update per entry.
      assert.notEqual(trie.batchMode, 'unknown');
      this.test!.title += ` (this kernel: ${trie.batchMode})`;
      assert.equal([...trie.keys()].length, n + 1);
      assert.deepEqual(trie.lookup(lpmKey(0x0afa0000 + 4321, 32)), u32(74_321));
      assert.deepEqual(trie.lookup(lpmKey(0x0a010203, 32)), u32(2), '10.1.2.3 falls under 10.0.0.0/8');
      assert.equal(trie.lookup(lpmKey(0x0b000001, 32)), undefined);
      // A bad entry (prefix longer than the key) is reported as such, and does not turn batching off.
      const mode = trie.batchMode;
      assert.throws(() => trie.updateBatch(lpmKey(0x0a000001, 33), u32(1), 1), /map wtdp_trie: EINVAL \(22\)/);
      assert.equal(trie.batchMode, mode);
      assert.equal(trie.delete(lpmKey(0x0a000000, 8)), true);
      assert.equal(trie.lookup(lpmKey(0x0a010203, 32)), undefined);
    });

    it('reads and writes per-CPU values, one 8-byte slot per possible CPU', () => {
      const percpu = obj.map('wtdp_percpu');
      assert.equal(percpu.valueSize, 8);
      const cpus = percpu.valueBufferSize / 8;
      assert.ok(Number.isInteger(cpus) && cpus >= 1);
      const value = Buffer.alloc(percpu.valueBufferSize);
      for (let c = 0; c < cpus; c++) value.writeBigUInt64LE(BigInt(c + 1) * 11n, c * 8);
      percpu.update(u32(3), value);
      assert.deepEqual(percpu.lookup(u32(3)), value);
      assert.throws(() => percpu.update(u32(3), Buffer.alloc(8 * cpus + 8)), /value is \d+ bytes, expected \d+/);
    });
  });

  describe('pinning', () => {
    it('shares pinned maps between objects with one pin root, and across a restart', () => {
      const root = pinRoot();
      const path = compile(dir, 'maps');
      const first = openObject(path, root);
      first.load();
      first.map('wtdp_hash').update(u32(1), u32(111));
      assert.ok(existsSync(join(root, 'wtdp_hash')) && existsSync(join(root, 'wtdp_trie')));
      assert.ok(!existsSync(join(root, 'wtdp_small')), 'maps without a pinning attribute are not pinned');

      // A second object with the same pin root reuses the maps: writes are seen both ways.
      const second = openObject(path, root);
      second.load();
      assert.deepEqual(second.map('wtdp_hash').lookup(u32(1)), u32(111));
      second.map('wtdp_hash').update(u32(2), u32(222));
      assert.deepEqual(first.map('wtdp_hash').lookup(u32(2)), u32(222));
      // Unpinned maps are the object's own.
      first.map('wtdp_small').update(u32(9), Buffer.alloc(8));
      assert.equal(second.map('wtdp_small').lookup(u32(9)), undefined);

      // So does anyone opening the pin directly, e.g. the CLI.
      const pinned = BpfMap.openPinned(join(root, 'wtdp_hash'));
      cleanups.push(() => pinned.close());
      assert.deepEqual([pinned.name, pinned.type, pinned.keySize, pinned.valueSize, pinned.maxEntries], ['wtdp_hash', BpfMapType.HASH, 4, 4, 65536]);
      assert.deepEqual(pinned.lookup(u32(2)), u32(222));
      pinned.update(u32(3), u32(333));

      // An agent restart: every object closed, a new one finds the state again.
      first.close();
      second.close();
      const restarted = openObject(path, root);
      restarted.load();
      assert.deepEqual(restarted.map('wtdp_hash').entries().map(([k, v]) => [k.readUInt32LE(), v.readUInt32LE()]).sort(), [[1, 111], [2, 222], [3, 333]]);
    });

    it('refuses to reuse a pinned map whose definition changed, quoting libbpf', () => {
      const root = pinRoot();
      openObject(compile(dir, 'maps'), root).load();
      const changed = openObject(compile(dir, 'maps', ['WTDP_HASH_VALUE=__u64']), root);
      assert.throws(() => changed.load(), (err: unknown) => {
        assert.ok(err instanceof BpfLoadError);
        assert.match(err.message, /couldn't reuse pinned map at '.*\/wtdp_hash': parameter mismatch/);
        return true;
      });
    });

    it('pins a map at a path and reopens it; openPinned fails clearly on a missing pin', () => {
      const root = pinRoot();
      const obj = openObject(compile(dir, 'maps'), root);
      obj.load();
      obj.map('wtdp_small').update(u32(5), Buffer.from('0102030405060708', 'hex'));
      obj.map('wtdp_small').pin(join(root, 'extra_small_map_name'));
      assert.throws(() => obj.map('wtdp_small').pin(join(root, 'extra_small_map_name')), /Cannot pin map wtdp_small at .*: EEXIST \(17\)/);
      const pinned = BpfMap.openPinned(join(root, 'extra_small_map_name'));
      cleanups.push(() => pinned.close());
      assert.equal(pinned.name, 'wtdp_small');
      assert.deepEqual(pinned.lookup(u32(5)), Buffer.from('0102030405060708', 'hex'));
      assert.throws(() => BpfMap.openPinned(join(root, 'missing')), (err: unknown) => err instanceof BpfSyscallError && /Cannot open pinned map .*missing: ENOENT \(2\)/.test(err.message));
    });
  });

  describe('sizes from the caller', () => {
    const trieKeys = (from: number, n: number): Buffer => {
      const keys = Buffer.alloc(n * 8);
      for (let i = 0; i < n; i++) lpmKey(0x0afb0000 + from + i, 32, keys, i * 8);
      return keys;
    };

    it('sizes maps before load, and a full map says so with how many entries it took', () => {
      const obj = BpfObject.open(compile(dir, 'maps'), { pinRoot: pinRoot(), maxEntries: { wtdp_trie: 16, wtdp_hash: 8, wtdp_not_here: 3 } });
      cleanups.push(() => obj.close());
      obj.load();
      const trie = obj.map('wtdp_trie');
      assert.equal(trie.maxEntries, 16);
      assert.equal(obj.map('wtdp_hash').maxEntries, 8);
      assert.equal(obj.map('wtdp_small').maxEntries, 2, 'maps not named keep their declared size');
      assert.throws(() => trie.updateBatch(trieKeys(0, 20), Buffer.alloc(20 * 4), 20), (err: unknown) => {
        assert.ok(err instanceof BpfSyscallError);
        assert.equal(err.mapFull, true);
        assert.equal(err.written, 16);
        return true;
      });
      trie.update(trieKeys(3, 1), u32(42));
      assert.deepEqual(trie.lookup(trieKeys(3, 1)), u32(42), 'an existing entry of a full trie can still be overwritten');
      assert.throws(() => obj.map('wtdp_hash').updateBatch(Buffer.concat(Array.from({ length: 9 }, (_, i) => u32(i))), Buffer.alloc(36), 9), (err: unknown) => err instanceof BpfSyscallError && err.mapFull && err.written === 8);
      assert.throws(() => BpfObject.open(compile(dir, 'maps'), { maxEntries: { wtdp_trie: 0 } }).load(), /Cannot size map wtdp_trie of .*: 0 is not a positive 32-bit entry count/);
    });

    it('replaces a pinned map of another size, copying what fits, and keeps it when the load fails', () => {
      const root = pinRoot();
      const path = compile(dir, 'maps');
      const first = openObject(path, root);
      first.load();
      first.map('wtdp_trie').updateBatch(trieKeys(0, 30), Buffer.alloc(30 * 4, 7), 30);
      first.map('wtdp_hash').update(u32(1), u32(11));
      // An old program keeps the old map; the pin moves to the new one.
      const oldId = BpfMap.openPinned(join(root, 'wtdp_trie'));
      cleanups.push(() => oldId.close());

      const sizes = { wtdp_trie: 20, wtdp_hash: 65536 };
      const again = BpfObject.open(compile(dir, 'maps', ['WTDP_REJECT']), { pinRoot: root, maxEntries: sizes });
      cleanups.push(() => again.close());
      assert.throws(() => again.load(), BpfLoadError);
      const kept = BpfMap.openPinned(join(root, 'wtdp_trie'));
      cleanups.push(() => kept.close());
      assert.equal(kept.maxEntries, 65536, 'a failed load pins the old map back');
      assert.equal([...kept.keys()].length, 30);

      const resized = BpfObject.open(path, { pinRoot: root, maxEntries: sizes });
      cleanups.push(() => resized.close());
      resized.load();
      assert.deepEqual(resized.resized, [{ map: 'wtdp_trie', from: 65536, to: 20, copied: 20, dropped: 10 }], 'the hash map kept its size: untouched');
      const now = BpfMap.openPinned(join(root, 'wtdp_trie'));
      cleanups.push(() => now.close());
      assert.equal(now.maxEntries, 20);
      assert.deepEqual(now.lookup(trieKeys(5, 1)), Buffer.alloc(4, 7));
      assert.deepEqual(resized.map('wtdp_hash').lookup(u32(1)), u32(11));
      assert.equal(first.map('wtdp_trie').maxEntries, 65536, 'the first object still holds the old map');

      // All or nothing where a part would be wrong.
      const whole = BpfObject.open(path, { pinRoot: root, maxEntries: { wtdp_trie: 10 }, copyWhole: ['wtdp_trie'] });
      cleanups.push(() => whole.close());
      whole.load();
      assert.deepEqual(whole.resized, [{ map: 'wtdp_trie', from: 20, to: 10, copied: 0, dropped: 20 }]);
      const refill = BpfObject.open(path, { pinRoot: root, maxEntries: { wtdp_trie: 20 } });
      cleanups.push(() => refill.close());
      refill.load();
      refill.map('wtdp_trie').updateBatch(trieKeys(0, 20), Buffer.alloc(20 * 4, 7), 20);

      // Growing back copies everything.
      const grown = BpfObject.open(path, { pinRoot: root, maxEntries: { wtdp_trie: 64 } });
      cleanups.push(() => grown.close());
      grown.load();
      assert.deepEqual(grown.resized, [{ map: 'wtdp_trie', from: 20, to: 64, copied: 20, dropped: 0 }]);
      assert.equal([...grown.map('wtdp_trie').keys()].length, 20);
    });

    it('batch-deletes keys, absent ones included', () => {
      const obj = openObject(compile(dir, 'maps'), pinRoot());
      obj.load();
      const trie = obj.map('wtdp_trie');
      trie.updateBatch(trieKeys(0, 10), Buffer.alloc(40), 10);
      assert.equal(trie.deleteBatch(Buffer.concat([trieKeys(0, 3), trieKeys(100, 2), trieKeys(3, 7)]), 12), 10);
      assert.equal([...trie.keys()].length, 0);
      assert.equal(trie.deleteBatch(trieKeys(0, 2), 2), 0);
    });

    it('test-runs a tc program on a frame: return value, mark and frame come back', () => {
      const obj = openObject(compile(dir, 'maps'), pinRoot());
      obj.load();
      const frame = Buffer.alloc(60);
      frame.writeUInt16BE(0x0800, 12);
      frame[14] = 0x45;
      const r = testRunTc(obj.programFd('touch_maps'), frame, { mark: 0x1234 });
      assert.equal(r.retval, 0, 'TC_ACT_OK');
      assert.equal(r.mark, 0x5eed);
      assert.deepEqual(r.data, frame);
      const many = testRunTc(obj.programFd('touch_maps'), frame, { repeat: 1000 });
      assert.equal(many.retval, 0);
      assert.ok(many.durationNs > 0, 'the kernel reports the mean time of a run');
    });
  });

  describe('tc and ring buffer', () => {
    const nsA = `wtdp-${tag}-a`;
    const nsB = `wtdp-${tag}-b`;
    const ifA = `wtdpa${tag}`;
    const ifB = `wtdpb${tag}`;
    const addrB = '10.250.0.2';
    let ifindexB = 0;

    before(() => {
      for (const ns of [nsA, nsB]) {
        execFileSync('ip', ['netns', 'add', ns], { stdio: 'pipe' });
        // No IPv6: its unsolicited packets (DAD, router solicitations) would make the counts racy.
        execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'], { stdio: 'pipe' });
        execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up'], { stdio: 'pipe' });
      }
      // Created inside nsA with its peer moved straight to nsB: the host namespace never sees either end.
      execFileSync('ip', ['-n', nsA, 'link', 'add', ifA, 'type', 'veth', 'peer', 'name', ifB, 'netns', nsB], { stdio: 'pipe' });
      execFileSync('ip', ['-n', nsA, 'addr', 'add', '10.250.0.1/30', 'dev', ifA], { stdio: 'pipe' });
      execFileSync('ip', ['-n', nsB, 'addr', 'add', `${addrB}/30`, 'dev', ifB], { stdio: 'pipe' });
      execFileSync('ip', ['-n', nsA, 'link', 'set', ifA, 'up'], { stdio: 'pipe' });
      execFileSync('ip', ['-n', nsB, 'link', 'set', ifB, 'up'], { stdio: 'pipe' });
      const links = JSON.parse(execFileSync('ip', ['-n', nsB, '-j', 'link', 'show', 'dev', ifB], { encoding: 'utf8' })) as Array<{ ifindex: number }>;
      ifindexB = links[0]!.ifindex;
    });

    after(() => {
      // Deleting the namespaces deletes the veth pair, and with it the qdisc and filters.
      for (const ns of [nsA, nsB]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    });

    /**
     * Runs `body` (JS, with `d` = this package's dist index) in node under
     * `ip netns exec ns`, since tc works on the caller's namespace and Node has
     * no setns. The program to attach is passed as descriptor 3. Returns the
     * JSON the body's value serializes to.
     */
    function inNamespace<T>(ns: string, body: string, programFd?: number): T {
      const script = `const d = require(${JSON.stringify(DIST_INDEX)});
        const r = (() => { ${body} })();
        process.stdout.write(JSON.stringify(r === undefined ? null : r));`;
      const child = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '-e', script], {
        stdio: ['ignore', 'pipe', 'pipe', programFd ?? 'ignore'],
        encoding: 'utf8',
        timeout: 30_000,
      });
      if (child.status !== 0) throw new Error(`helper in ${ns} failed (${child.status ?? child.signal}): ${child.stderr}`);
      return JSON.parse(child.stdout) as T;
    }

    function ping(count: number): void {
      const r = spawnSync('ip', ['netns', 'exec', nsA, 'ping', '-n', '-q', '-c', String(count), '-i', '0.2', '-W', '2', addrB], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(r.status, 0, `ping ${addrB} from ${nsA} failed: ${r.stdout}${r.stderr}`);
    }

    interface Rec {
      len: number;
      ifindex: number;
      protocol: number;
      seq: number;
    }
    const decode = (b: Buffer): Rec => {
      assert.equal(b.length, 16);
      return { len: b.readUInt32LE(0), ifindex: b.readUInt32LE(4), protocol: b.readUInt16BE(8), seq: b.readUInt32LE(12) };
    };

    it('counts pings on a veth in a namespace and streams one ring buffer record per packet', async () => {
      const obj = openObject(compile(dir, 'counter'), pinRoot());
      obj.load();
      const counter = obj.map('wtdp_counter');
      const count = (): number => Number(counter.lookup(u32(0))!.readBigUInt64LE());
      const reader = new RingBufferReader(obj.map('wtdp_events'));
      cleanups.push(() => reader.stop());
      assert.equal(reader.consume(() => assert.fail('no packet yet')), 0);
      const fd = obj.programFd('count_packets');

      const attached = inNamespace<{ id: number; query: number }>(
        nsB,
        `const id = d.attachTc({ ifindex: ${ifindexB}, direction: 'ingress', programFd: 3 });
         return { id, query: d.queryTc({ ifindex: ${ifindexB}, direction: 'ingress' }) };`,
        fd,
      );
      assert.equal(attached.id, progId(fd));
      assert.equal(attached.query, attached.id);

      // Real traffic: nsA pings nsB's address across the pair; nsB's ingress sees the ARP request and the echo requests.
      ping(3);
      const seen = count();
      assert.ok(seen >= 4, `counted ${seen} packets, expected the ARP request and 3 echo requests`);
      const records: Rec[] = [];
      assert.equal(reader.consume((b) => records.push(decode(b))), seen);
      assert.deepEqual(records.map((r) => r.seq), Array.from({ length: seen }, (_, i) => i + 1));
      assert.ok(records.every((r) => r.ifindex === ifindexB));
      const echoes = records.filter((r) => r.protocol === 0x0800);
      assert.equal(echoes.length, 3);
      assert.ok(echoes.every((r) => r.len === 98), 'ethernet 14 + IPv4 20 + ICMP 8 + 56 data bytes');
      assert.ok(records.some((r) => r.protocol === 0x0806), 'the ARP request');

      // On a timer: records arrive without anyone calling consume().
      const streamed: Rec[] = [];
      reader.start((b) => streamed.push(decode(b)), { intervalMs: 5 });
      assert.throws(() => reader.start(() => undefined), /already started/);
      ping(2);
      for (let i = 0; i < 200 && streamed.length < count() - seen; i++) await sleep(10);
      reader.stop();
      assert.ok(streamed.length >= 2);
      assert.deepEqual(streamed.map((r) => r.seq), Array.from({ length: streamed.length }, (_, i) => seen + i + 1));

      // A handler that throws: the error reaches the caller, the record is consumed, the rest wait.
      const before = count();
      ping(2);
      const pending = count() - before;
      assert.ok(pending >= 2);
      assert.throws(() => reader.consume(() => { throw new Error('handler failed'); }), /^Error: handler failed$/);
      const rest: Rec[] = [];
      assert.equal(reader.consume((b) => rest.push(decode(b))), pending - 1);
      assert.equal(rest[0]!.seq, before + 2);
    });

    it('reads records that wrap around the end of the ring whole and in order, also by descriptor', () => {
      const obj = openObject(compile(dir, 'counter'), pinRoot());
      obj.load();
      // 24-byte records (16 + the 8-byte header) in a 64 KiB ring: the 2,731st straddles its end.
      const reader = new RingBufferReader(obj.map('wtdp_events').fd);
      cleanups.push(() => reader.stop());
      const frame = Buffer.alloc(64);
      const seqs: number[] = [];
      for (let i = 0; i < 3; i++) {
        assert.equal(testRunTc(obj.programFd('count_packets'), frame, { repeat: 2000 }).retval, 0);
        assert.equal(reader.consume((b) => seqs.push(decode(b).seq)), 2000);
      }
      assert.deepEqual(seqs, Array.from({ length: 6000 }, (_, i) => i + 1), 'every record once, in order, across two wraps');
    });

    it('replaces, queries and detaches in both directions, and reports attach errors', () => {
      const obj = openObject(compile(dir, 'counter'), pinRoot());
      obj.load();
      const fd = obj.programFd('count_packets');
      const result = inNamespace<{ ingress: number; again: number; egress: number; queried: number[]; detached: boolean[]; after: Array<number | null>; error: { code: string; message: string }; hook: boolean[] }>(
        nsB,
        `const t = { ifindex: ${ifindexB}, direction: 'ingress' };
         const e = { ifindex: ${ifindexB}, direction: 'egress' };
         const ingress = d.attachTc({ ...t, programFd: 3 });
         const again = d.attachTc({ ...t, programFd: 3 }); // BPF_TC_F_REPLACE: no EEXIST
         const egress = d.attachTc({ ...e, programFd: 3, priority: 7, handle: 9 });
         const queried = [d.queryTc(t), d.queryTc({ ...e, priority: 7, handle: 9 })];
         const detached = [d.detachTc(t), d.detachTc({ ...e, priority: 7, handle: 9 }), d.detachTc(t)];
         const after = [d.queryTc(t), d.queryTc({ ...e, priority: 7, handle: 9 })].map((x) => x ?? null);
         let error;
         try { d.attachTc({ ifindex: 999999, direction: 'ingress', programFd: 3 }); } catch (err) { error = { code: err.code, message: err.message }; }
         const hook = [d.destroyTcHook(t.ifindex), d.destroyTcHook(t.ifindex)];
         return { ingress, again, egress, queried, detached, after, error, hook };`,
        fd,
      );
      const id = progId(fd);
      assert.deepEqual([result.ingress, result.again, result.egress], [id, id, id]);
      assert.deepEqual(result.queried, [id, id]);
      assert.deepEqual(result.detached, [true, true, false]);
      assert.deepEqual(result.after, [null, null]);
      assert.equal(result.error.code, 'WEFT_ERR_BPF_ATTACH');
      assert.match(result.error.message, /^Cannot create the clsact qdisc on ifindex 999999 \(no such interface here\) ingress: ENODEV \(19\)/);
      assert.deepEqual(result.hook, [true, false]);
    });

    it('names the interface in an attach error', () => {
      const result = inNamespace<{ message: string }>(
        nsB,
        `try { d.attachTc({ ifindex: ${ifindexB}, direction: 'egress', programFd: 0 }); } catch (err) { return { message: err.message }; }`,
      );
      assert.match(result.message, new RegExp(`^Cannot attach a tc program to ${ifB} \\(ifindex ${ifindexB}\\) egress: [A-Z]+ \\(\\d+\\)`));
    });
  });
});
