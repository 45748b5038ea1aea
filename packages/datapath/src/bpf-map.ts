/**
 * BpfMap: one BPF map by file descriptor, keys and values as Buffers of the
 * map's exact sizes (see maps/codec.ts). Calls are synchronous bpf(2)
 * syscalls through libbpf; the hot path allocates nothing per call beyond
 * what the caller passes.
 */
import { BpfSyscallError } from './errors.js';
import { lastErrno, libbpf } from './libbpf.js';

export const BPF_ANY = 0;
export const BPF_NOEXIST = 1;
export const BPF_EXIST = 2;
const ENOENT = 2;
const EINVAL = 22;
const ENOTSUPP = 524;
const EOPNOTSUPP = 95;

export class BpfMap {
  private batchUnsupported = false;
  private closed = false;

  constructor(
    readonly name: string,
    readonly fd: number,
    readonly keySize: number,
    readonly valueSize: number,
    readonly maxEntries: number,
    readonly type: number,
    private readonly owned: boolean,
  ) {}

  /** Opens a map pinned in bpffs (e.g. by a running agent). */
  static openPinned(path: string): BpfMap {
    const l = libbpf();
    const fd = l.obj_get(path) as number;
    if (fd < 0) throw new BpfSyscallError(`open pinned map ${path}`, -fd || lastErrno());
    const info: Record<string, unknown> = {};
    const len = [Number(l.types.MapInfo.size)];
    const r = l.map_info(fd, info, len) as number;
    if (r < 0) throw new BpfSyscallError(`read info of pinned map ${path}`, -r);
    return new BpfMap(String(info.name), fd, Number(info.key_size), Number(info.value_size), Number(info.max_entries), Number(info.type), true);
  }

  private check(buf: Buffer, size: number, what: string): void {
    if (buf.length !== size) throw new RangeError(`Map ${this.name}: ${what} is ${buf.length} bytes, expected ${size}`);
  }

  update(key: Buffer, value: Buffer, flags = BPF_ANY): void {
    this.check(key, this.keySize, 'key');
    this.check(value, this.valueSize, 'value');
    const r = libbpf().update(this.fd, key, value, flags) as number;
    if (r < 0) throw new BpfSyscallError(`update map ${this.name}`, -r);
  }

  lookup(key: Buffer): Buffer | undefined {
    this.check(key, this.keySize, 'key');
    const value = Buffer.alloc(this.valueSize);
    const r = libbpf().lookup(this.fd, key, value) as number;
    if (r === -ENOENT) return undefined;
    if (r < 0) throw new BpfSyscallError(`look up in map ${this.name}`, -r);
    return value;
  }

  /** Deletes a key; returns whether it existed. */
  delete(key: Buffer): boolean {
    this.check(key, this.keySize, 'key');
    const r = libbpf().delete_(this.fd, key) as number;
    if (r === -ENOENT) return false;
    if (r < 0) throw new BpfSyscallError(`delete from map ${this.name}`, -r);
    return true;
  }

  *keys(): Generator<Buffer> {
    const l = libbpf();
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.keySize);
      const r = l.next_key(this.fd, prev, next) as number;
      if (r === -ENOENT) return;
      if (r < 0) throw new BpfSyscallError(`iterate map ${this.name}`, -r);
      yield next;
      prev = next;
    }
  }

  /** Every entry; keys deleted while iterating are skipped. */
  entries(): Array<[Buffer, Buffer]> {
    const out: Array<[Buffer, Buffer]> = [];
    for (const k of this.keys()) {
      const v = this.lookup(k);
      if (v) out.push([k, v]);
    }
    return out;
  }

  /**
   * Writes `count` entries packed in `keys` and `values` with one
   * BPF_MAP_UPDATE_BATCH syscall; on kernels or map types without batch
   * support, one update per entry (remembered after the first refusal).
   */
  updateBatch(keys: Buffer, values: Buffer, count: number): void {
    if (keys.length !== count * this.keySize || values.length !== count * this.valueSize) {
      throw new RangeError(`Map ${this.name}: batch of ${count} needs ${count * this.keySize} key bytes and ${count * this.valueSize} value bytes`);
    }
    if (count === 0) return;
    if (!this.batchUnsupported) {
      const n = [count];
      const r = libbpf().update_batch(this.fd, keys, values, n, { sz: Number(libbpf().types.BatchOpts.size), elem_flags: 0, flags: 0 }) as number;
      if (r === 0) return;
      if (r !== -EINVAL && r !== -ENOTSUPP && r !== -EOPNOTSUPP) throw new BpfSyscallError(`batch-update map ${this.name}`, -r);
      this.batchUnsupported = true;
    }
    const l = libbpf();
    for (let i = 0; i < count; i++) {
      const r = l.update(this.fd, keys.subarray(i * this.keySize, (i + 1) * this.keySize), values.subarray(i * this.valueSize, (i + 1) * this.valueSize), BPF_ANY) as number;
      if (r < 0) throw new BpfSyscallError(`update map ${this.name}`, -r);
    }
  }

  pin(path: string): void {
    const r = libbpf().obj_pin(this.fd, path) as number;
    if (r < 0) throw new BpfSyscallError(`pin map ${this.name} at ${path}`, -r);
  }

  close(): void {
    if (this.closed || !this.owned) return;
    this.closed = true;
    libbpf().close(this.fd);
  }
}
