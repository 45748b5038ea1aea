/**
 * BpfMap: one BPF map by file descriptor, with keys and values as Buffers of
 * the map's exact sizes (maps/codec.ts encodes them). Every call is one
 * synchronous bpf(2) syscall through libbpf, so the agent's map writes are
 * ordered with its other work; the hot paths (update, lookupInto, updateBatch)
 * allocate nothing per call.
 *
 * Invariants:
 * - A key or value Buffer is checked against the map's sizes before the
 *   syscall: the kernel reads and writes exactly that many bytes, so a short
 *   Buffer would be read or written past its end.
 * - Values of per-CPU maps hold one slot per possible CPU, each rounded up to
 *   8 bytes (the kernel's ABI); `valueBufferSize` is that total.
 * - Once closed (or once the BpfObject owning it is closed) every call throws
 *   instead of using a descriptor number that may since name another file.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { BpfSyscallError } from './errors.js';
import { decodeMapInfo, encodeBatchOpts, lastErrno, libbpf, STRUCT_SIZES, type Libbpf, type MapInfo } from './libbpf.js';

/** Update flags (linux/bpf.h). */
export const BPF_ANY = 0;
export const BPF_NOEXIST = 1;
export const BPF_EXIST = 2;

/** The map types Weft uses or tests, by their linux/bpf.h numbers. */
export const BpfMapType = {
  HASH: 1,
  ARRAY: 2,
  PROG_ARRAY: 3,
  PERF_EVENT_ARRAY: 4,
  PERCPU_HASH: 5,
  PERCPU_ARRAY: 6,
  LRU_HASH: 9,
  LRU_PERCPU_HASH: 10,
  LPM_TRIE: 11,
  PERCPU_CGROUP_STORAGE: 21,
  RINGBUF: 27,
} as const;

const PER_CPU_TYPES: ReadonlySet<number> = new Set([BpfMapType.PERCPU_HASH, BpfMapType.PERCPU_ARRAY, BpfMapType.LRU_PERCPU_HASH, BpfMapType.PERCPU_CGROUP_STORAGE]);

const ENOENT = 2;
const EINVAL = 22;
const ENOSPC = 28;
const EOPNOTSUPP = 95;
/** The kernel's "operation not supported" for a map type without batch ops (not in libc's errno table). */
const ENOTSUPP = 524;

/**
 * How updateBatch writes this map: `unknown` until the first batch; `batched`
 * once BPF_MAP_UPDATE_BATCH worked; `per-entry` once the kernel refused the
 * batch command for this map (remembered, so the refusal costs one syscall).
 */
export type BatchMode = 'unknown' | 'batched' | 'per-entry';

export interface BpfMapInit {
  name: string;
  fd: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  type: number;
  /** Whether close() closes the descriptor (maps opened from a pin); an object's maps belong to the object. */
  ownsFd: boolean;
}

/** The kernel's bpf_map_info of the map behind `fd`; `what` names it in the error. */
export function mapInfoOf(fd: number, what: string): MapInfo {
  const info = Buffer.alloc(STRUCT_SIZES.bpf_map_info);
  const len = new Uint32Array([info.length]);
  const e = libbpf().objGetInfoByFd(fd, info, len);
  if (e < 0) throw new BpfSyscallError(`read the info of ${what}`, -e);
  return decodeMapInfo(info);
}

export class BpfMap {
  readonly name: string;
  readonly fd: number;
  readonly keySize: number;
  /** The value size as declared (per CPU, for per-CPU maps). */
  readonly valueSize: number;
  /** Bytes of a value Buffer: valueSize, or one 8-byte-aligned slot per possible CPU for per-CPU maps. */
  readonly valueBufferSize: number;
  readonly maxEntries: number;
  /** linux/bpf.h `enum bpf_map_type`; see BpfMapType. */
  readonly type: number;
  private readonly ownsFd: boolean;
  private readonly lib: Libbpf;
  private closed = false;
  private mode: BatchMode = 'unknown';
  private deleteMode: BatchMode = 'unknown';
  /** In/out entry count of bpf_map_update_batch, and its encoded options (elem_flags 0 = BPF_ANY), made on first use. */
  private batchCount: Uint32Array | undefined;
  private batchOpts: Buffer | undefined;

  /** Use BpfObject.map() or BpfMap.openPinned(); this is for them. */
  constructor(init: BpfMapInit) {
    this.lib = libbpf();
    this.name = init.name;
    this.fd = init.fd;
    this.keySize = init.keySize;
    this.valueSize = init.valueSize;
    this.maxEntries = init.maxEntries;
    this.type = init.type;
    this.ownsFd = init.ownsFd;
    if (PER_CPU_TYPES.has(init.type)) {
      const cpus = this.lib.numPossibleCpus();
      if (cpus <= 0) throw new BpfSyscallError(`count the possible CPUs for per-CPU map ${init.name}`, -cpus || lastErrno());
      this.valueBufferSize = Math.ceil(init.valueSize / 8) * 8 * cpus;
    } else {
      this.valueBufferSize = init.valueSize;
    }
  }

  /**
   * Opens a map pinned in bpffs (by an agent, or by an object opened with a
   * pin root). The returned map owns its descriptor: close() it.
   */
  static openPinned(path: string): BpfMap {
    const lib = libbpf();
    const r = lib.objGet(path);
    if (r < 0) throw new BpfSyscallError(`open pinned map ${path}`, -r);
    const fd = r;
    try {
      // bpf_obj_get also opens pinned programs and links; their info is not a bpf_map_info.
      if (!/^map_type:/m.test(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))) {
        throw new BpfSyscallError(`open pinned map ${path}`, EINVAL, 'the pinned object is not a map');
      }
      const m = mapInfoOf(fd, `pinned map ${path}`);
      // The kernel keeps 15 characters of a name; the pin's file name is the whole one.
      const file = basename(path);
      const name = m.name && file.startsWith(m.name) ? file : m.name || file;
      return new BpfMap({ name, fd, keySize: m.key_size, valueSize: m.value_size, maxEntries: m.max_entries, type: m.type, ownsFd: true });
    } catch (err) {
      lib.close(fd);
      throw err;
    }
  }

  get batchMode(): BatchMode {
    return this.mode;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Writes one entry; `flags` is BPF_ANY, BPF_NOEXIST (EEXIST if present) or BPF_EXIST (ENOENT if absent). */
  update(key: Buffer, value: Buffer, flags: number = BPF_ANY): void {
    this.checkOpen('update');
    if (key.length !== this.keySize) this.sizeError('key', key.length, this.keySize);
    if (value.length !== this.valueBufferSize) this.sizeError('value', value.length, this.valueBufferSize);
    const r = this.lib.mapUpdateElem(this.fd, key, value, flags);
    if (r < 0) throw new BpfSyscallError(`update map ${this.name}`, -r);
  }

  /** The value stored at `key` (for an LPM trie: of the longest matching prefix), or undefined. */
  lookup(key: Buffer): Buffer | undefined {
    const value = Buffer.alloc(this.valueBufferSize);
    return this.lookupInto(key, value) ? value : undefined;
  }

  /** Like lookup, into a caller-owned Buffer; returns false (and leaves `out` alone) when the key is absent. */
  lookupInto(key: Buffer, out: Buffer): boolean {
    this.checkOpen('look up in');
    if (key.length !== this.keySize) this.sizeError('key', key.length, this.keySize);
    if (out.length !== this.valueBufferSize) this.sizeError('value', out.length, this.valueBufferSize);
    const r = this.lib.mapLookupElem(this.fd, key, out);
    if (r === -ENOENT) return false;
    if (r < 0) throw new BpfSyscallError(`look up in map ${this.name}`, -r);
    return true;
  }

  /** Deletes a key; returns whether it was there. */
  delete(key: Buffer): boolean {
    this.checkOpen('delete from');
    if (key.length !== this.keySize) this.sizeError('key', key.length, this.keySize);
    const r = this.lib.mapDeleteElem(this.fd, key);
    if (r === -ENOENT) return false;
    if (r < 0) throw new BpfSyscallError(`delete from map ${this.name}`, -r);
    return true;
  }

  /**
   * Every key, one bpf_map_get_next_key per step; each yielded Buffer is the
   * caller's. The kernel gives no snapshot: if the current key is deleted
   * meanwhile a hash map restarts from its first key, so collect the keys
   * before deleting many of them.
   */
  *keys(): Generator<Buffer, void, undefined> {
    let prev: Buffer | null = null;
    for (;;) {
      this.checkOpen('iterate');
      const next = Buffer.alloc(this.keySize);
      const r = this.lib.mapGetNextKey(this.fd, prev, next);
      if (r === -ENOENT) return;
      if (r < 0) throw new BpfSyscallError(`iterate map ${this.name}`, -r);
      yield next;
      prev = next;
    }
  }

  /** Every entry; a key deleted between being listed and being read is left out. */
  entries(): Array<[Buffer, Buffer]> {
    const out: Array<[Buffer, Buffer]> = [];
    for (const key of this.keys()) {
      const value = this.lookup(key);
      if (value) out.push([key, value]);
    }
    return out;
  }

  /**
   * Writes `count` entries (BPF_ANY) packed back to back in `keys` and
   * `values`: one BPF_MAP_UPDATE_BATCH syscall where the kernel supports it
   * for the map type, else one update per entry. A kernel without batch
   * support answers ENOTSUPP (or, before 5.6, EINVAL for the unknown
   * command); an EINVAL is only taken as "unsupported" when the per-entry
   * writes of the same data then succeed, so bad data (an LPM prefix longer
   * than the key) is reported as such and does not turn batching off.
   * On failure the error says how many entries were written (in order).
   */
  updateBatch(keys: Buffer, values: Buffer, count: number): void {
    this.checkOpen('batch-update');
    if (!Number.isInteger(count) || count < 0 || count > 0xffffffff) throw new RangeError(`Map ${this.name}: batch count ${count} is not a 32-bit unsigned integer`);
    if (keys.length !== count * this.keySize || values.length !== count * this.valueBufferSize) {
      throw new RangeError(
        `Map ${this.name}: a batch of ${count} needs ${count * this.keySize} key bytes and ${count * this.valueBufferSize} value bytes, got ${keys.length} and ${values.length}`,
      );
    }
    if (count === 0) return;
    if (this.mode !== 'per-entry') {
      const n = (this.batchCount ??= new Uint32Array(1));
      const opts = (this.batchOpts ??= encodeBatchOpts(BPF_ANY));
      n[0] = count;
      const r = this.lib.mapUpdateBatch(this.fd, keys, values, n, opts);
      if (r === 0) {
        this.mode = 'batched';
        return;
      }
      const errno = -r;
      const written = n[0] as number;
      const unsupported = errno === ENOTSUPP || errno === EOPNOTSUPP;
      const maybeUnsupported = errno === EINVAL && written === 0 && this.mode === 'unknown';
      if (!unsupported && !maybeUnsupported) {
        throw new BpfSyscallError(`batch-update map ${this.name}`, errno, `${written} of ${count} entries written`, written);
      }
      this.updateEach(keys, values, count);
      this.mode = 'per-entry';
      return;
    }
    this.updateEach(keys, values, count);
  }

  /**
   * Every entry, in chunks of up to `chunk`: one BPF_MAP_LOOKUP_BATCH syscall per chunk where the
   * kernel has it for the map type, else keys() and a lookup each. A yielded chunk's Buffers are
   * reused for the next one: copy what you keep. The kernel gives no snapshot: an entry added or
   * deleted during the walk may be seen or not, but deleting entries of a chunk already yielded
   * does not disturb the walk (a hash map is walked bucket by bucket, not key by key).
   */
  *lookupBatches(chunk = 4096): Generator<{ keys: Buffer; values: Buffer; count: number }, void, undefined> {
    this.checkOpen('batch-read');
    if (!Number.isInteger(chunk) || chunk < 1) throw new RangeError(`Map ${this.name}: batch chunk ${chunk} is not a positive integer`);
    let keys = Buffer.alloc(chunk * this.keySize);
    let values = Buffer.alloc(chunk * this.valueBufferSize);
    // The position token: a bucket number (u32) for hash maps, a key for arrays.
    const tokenSize = Math.max(8, this.keySize);
    let inBatch: Buffer | null = null;
    let outBatch = Buffer.alloc(tokenSize);
    const n = new Uint32Array(1);
    const opts = (this.batchOpts ??= encodeBatchOpts(BPF_ANY));
    for (let first = true; ; first = false) {
      this.checkOpen('batch-read');
      n[0] = chunk;
      const r = this.lib.mapLookupBatch(this.fd, inBatch, outBatch, keys, values, n, opts);
      const got = n[0] as number;
      if (r < 0 && r !== -ENOENT) {
        const errno = -r;
        if (first && (errno === ENOTSUPP || errno === EOPNOTSUPP || errno === EINVAL)) {
          yield* this.lookupEach(chunk);
          return;
        }
        if (errno === ENOSPC) {
          // One bucket holds more entries than a chunk: read it again with room for it.
          chunk *= 2;
          keys = Buffer.alloc(chunk * this.keySize);
          values = Buffer.alloc(chunk * this.valueBufferSize);
          continue;
        }
        throw new BpfSyscallError(`batch-read map ${this.name}`, errno);
      }
      if (got > 0) yield { keys, values, count: got };
      if (r === -ENOENT) return;
      inBatch = outBatch;
      outBatch = Buffer.alloc(tokenSize);
    }
  }

  private *lookupEach(chunk: number): Generator<{ keys: Buffer; values: Buffer; count: number }, void, undefined> {
    const keys = Buffer.alloc(chunk * this.keySize);
    const values = Buffer.alloc(chunk * this.valueBufferSize);
    let count = 0;
    for (const key of this.keys()) {
      if (!this.lookupInto(key, values.subarray(count * this.valueBufferSize, (count + 1) * this.valueBufferSize))) continue;
      key.copy(keys, count * this.keySize);
      if (++count === chunk) {
        yield { keys, values, count };
        count = 0;
      }
    }
    if (count > 0) yield { keys, values, count };
  }

  private updateEach(keys: Buffer, values: Buffer, count: number): void {
    const { keySize, valueBufferSize: valueSize } = this;
    for (let i = 0; i < count; i++) {
      const r = this.lib.mapUpdateElem(this.fd, keys.subarray(i * keySize, (i + 1) * keySize), values.subarray(i * valueSize, (i + 1) * valueSize), BPF_ANY);
      if (r < 0) throw new BpfSyscallError(`update map ${this.name}`, -r, `entry ${i} of a batch of ${count}; ${i} entries written`, i);
    }
  }

  /**
   * Deletes `count` keys packed back to back in `keys`, absent ones included;
   * returns how many were there. One BPF_MAP_DELETE_BATCH syscall where the
   * kernel supports it (it stops at an absent key, and the rest go on from
   * there), else one delete per key.
   */
  deleteBatch(keys: Buffer, count: number): number {
    this.checkOpen('batch-delete from');
    if (keys.length !== count * this.keySize) throw new RangeError(`Map ${this.name}: a batch of ${count} needs ${count * this.keySize} key bytes, got ${keys.length}`);
    let deleted = 0;
    let i = 0;
    const n = (this.batchCount ??= new Uint32Array(1));
    const opts = (this.batchOpts ??= encodeBatchOpts(BPF_ANY));
    while (i < count) {
      if (this.deleteMode !== 'per-entry') {
        n[0] = count - i;
        const r = this.lib.mapDeleteBatch(this.fd, keys.subarray(i * this.keySize), n, opts);
        const done = n[0] as number;
        if (r === 0) {
          this.deleteMode = 'batched';
          return deleted + done;
        }
        if (-r === ENOENT) {
          // Key i + done is absent: skip it, go on with the rest.
          this.deleteMode = 'batched';
          deleted += done;
          i += done + 1;
          continue;
        }
        if (-r !== ENOTSUPP && -r !== EOPNOTSUPP && -r !== EINVAL) throw new BpfSyscallError(`batch-delete from map ${this.name}`, -r, `${done} of ${count - i} keys deleted`, deleted + done);
        this.deleteMode = 'per-entry';
      }
      if (this.delete(keys.subarray(i * this.keySize, (i + 1) * this.keySize))) deleted++;
      i++;
    }
    return deleted;
  }

  /** Pins the map at `path` in a BPF filesystem (EEXIST if something is pinned there). */
  pin(path: string): void {
    this.checkOpen('pin');
    const r = this.lib.objPin(this.fd, path);
    if (r < 0) throw new BpfSyscallError(`pin map ${this.name} at ${path}`, -r);
  }

  /**
   * Closes the map. A map opened with openPinned closes its descriptor; the
   * map itself lives on while pinned or used by a program. A map of a
   * BpfObject is closed with the object, and this is a no-op for it.
   */
  close(): void {
    if (this.closed || !this.ownsFd) return;
    this.closed = true;
    this.lib.close(this.fd);
  }

  /** Called by the owning BpfObject when it closes (and with it the descriptor). */
  invalidate(): void {
    this.closed = true;
  }

  private checkOpen(action: string): void {
    if (this.closed) throw new BpfSyscallError(`${action} map ${this.name}`, 9 /* EBADF */, 'the map was closed');
  }

  private sizeError(what: 'key' | 'value', got: number, expected: number): never {
    throw new RangeError(`Map ${this.name}: ${what} is ${got} bytes, expected ${expected}`);
  }
}
