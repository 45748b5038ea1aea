/**
 * BpfObject: one compiled object file (bpf/build/*.o) through libbpf's object
 * API. open() parses it, load() creates its maps and runs the verifier on its
 * programs; then programFd() and map() hand out what the agent attaches and
 * writes.
 *
 * Maps declared with `__uint(pinning, LIBBPF_PIN_BY_NAME)` live at
 * `<pinRoot>/<map name>`: the first object to load creates and pins them,
 * every later object opened with the same pin root (the other object of the
 * node, the agent after a restart) reuses the pinned map and its contents.
 * libbpf refuses to reuse a pin whose definition differs (type, key or value
 * size, flags); that refusal is a BpfLoadError quoting libbpf.
 *
 * `maxEntries` sizes maps before load (bpf_map__set_max_entries). A pinned
 * map of another size than asked (the operator changed the configuration)
 * is replaced, not refused: load() reads its entries, unpins it, lets libbpf
 * create and pin the new one, and copies the entries over (as many as fit;
 * `resized` reports what happened). Programs still attached keep using the
 * old map until they are replaced, so traffic flows throughout; if the load
 * fails, the old map is pinned back.
 *
 * A failed load reports the verifier log: the object gets one log buffer in
 * its open options, which libbpf hands to the kernel when it retries a failed
 * program load at log level 1, so a successful load costs no log at all.
 */
import { existsSync, mkdirSync, rmSync, statfsSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '@weft/common';
import { BpfMap } from './bpf-map.js';
import { BpfLoadError, BpfSyscallError, errnoName } from './errors.js';
import {
  allocNative,
  captureLibbpfMessages,
  freeNative,
  lastErrno,
  libbpf,
  readNativeString,
  STRUCT_SIZES,
  type Libbpf,
  type NativeMemory,
  type ObjectHandle,
  type ProgramHandle,
} from './libbpf.js';

const BPF_FS_MAGIC = 0xcafe4a11;
const ENOSPC = 28;
/** Verifier log buffer per object. Kernels since 6.4 keep the tail of a longer log, where the rejecting instruction is. */
const DEFAULT_LOG_SIZE = 1 << 20;

export interface BpfObjectOptions {
  /**
   * Directory in a BPF filesystem for the maps pinned by name; created if
   * missing. Without it libbpf pins such maps directly under /sys/fs/bpf.
   */
  pinRoot?: string;
  /** Receives libbpf's warnings when the load succeeds anyway (a failure puts them in the error). */
  logger?: Logger;
  /** Bytes of verifier log kept for a failed load. Default 1 MiB. */
  logSize?: number;
  /**
   * Programs that must be in the object (checked at open). Optional: the
   * verifier log of every program is captured either way.
   */
  programs?: readonly string[];
  /**
   * Map name -> max_entries, instead of what the object declares; maps the
   * object does not have are ignored. Every object sharing a pin root must be
   * given the same sizes.
   */
  maxEntries?: Readonly<Record<string, number>>;
  /**
   * Maps whose entries, when a resize replaces them, are copied all or not at all: where a part
   * would mean something wrong (half of an endpoint's policy), none means something safe.
   */
  copyWhole?: readonly string[];
}

/** A pinned map replaced by load() because its size was not the one asked for. */
export interface ResizedMap {
  map: string;
  from: number;
  to: number;
  /** Entries copied from the old map into the new one. */
  copied: number;
  /** Entries of the old map that did not fit into the new one. */
  dropped: number;
}

export class BpfObject {
  private handle: ObjectHandle | undefined;
  private logBuf: NativeMemory | undefined;
  private loaded = false;
  private readonly maps = new Map<string, BpfMap>();
  private readonly sizes: Readonly<Record<string, number>>;
  private readonly copyWhole: ReadonlySet<string>;
  /** Pinned maps load() replaced with maps of the size asked for. */
  readonly resized: ResizedMap[] = [];

  private constructor(
    readonly path: string,
    readonly pinRoot: string | undefined,
    handle: ObjectHandle,
    logBuf: NativeMemory,
    private readonly logSize: number,
    private readonly logger: Logger | undefined,
    private readonly lib: Libbpf,
    sizes: Readonly<Record<string, number>>,
    copyWhole: readonly string[],
  ) {
    this.handle = handle;
    this.logBuf = logBuf;
    this.sizes = sizes;
    this.copyWhole = new Set(copyWhole);
  }

  /** Parses the object file; nothing reaches the kernel until load(). */
  static open(path: string, options: BpfObjectOptions = {}): BpfObject {
    if (!existsSync(path)) throw new BpfLoadError(`Cannot open BPF object ${path}: no such file (build it with hack/build-bpf.sh)`, { errno: 2 });
    const { pinRoot } = options;
    if (pinRoot !== undefined) {
      try {
        mkdirSync(pinRoot, { recursive: true });
      } catch (err) {
        throw new BpfLoadError(`Cannot open BPF object ${path}: cannot create the pin root ${pinRoot}: ${(err as Error).message}`, { cause: err });
      }
      // Pinning outside bpffs fails deep inside load() with a bare EPERM; say it here.
      if (statfsSync(pinRoot).type !== BPF_FS_MAGIC) throw new BpfLoadError(`Cannot open BPF object ${path}: the pin root ${pinRoot} is not in a BPF filesystem (see ensureBpffs)`);
    }
    const lib = libbpf();
    const logSize = options.logSize ?? DEFAULT_LOG_SIZE;
    const logBuf = allocNative(logSize);
    let errno = 0;
    const { result: handle, messages } = captureLibbpfMessages(() => {
      const h = lib.objectOpenFile(path, {
        sz: STRUCT_SIZES.bpf_object_open_opts,
        pin_root_path: pinRoot ?? null,
        kernel_log_buf: logBuf,
        kernel_log_size: logSize,
        // 0: no log while loading succeeds; libbpf retries a failing program at level 1 into the buffer.
        kernel_log_level: 0,
      });
      if (!h) errno = lastErrno();
      return h;
    });
    if (!handle) {
      freeNative(logBuf);
      throw new BpfLoadError(`Cannot open BPF object ${path}: ${errnoName(errno)}`, { libbpfMessages: messages, errno });
    }
    const obj = new BpfObject(path, pinRoot, handle, logBuf, logSize, options.logger, lib, options.maxEntries ?? {}, options.copyWhole ?? []);
    for (const name of options.programs ?? []) {
      if (!lib.objectFindProgramByName(handle, name)) {
        obj.close();
        throw new BpfLoadError(`BPF object ${path} has no program ${JSON.stringify(name)}`);
      }
    }
    obj.report(messages);
    return obj;
  }

  /**
   * Creates or reuses the maps and loads every program (the verifier runs
   * now). A rejection throws BpfLoadError with the verifier log; the object
   * cannot be loaded again after a failure, close it.
   */
  load(): void {
    const handle = this.live('load');
    if (this.loaded) return;
    this.applySizes(handle);
    const replaced = this.unpinResized();
    const { result: r, messages } = captureLibbpfMessages(() => this.lib.objectLoad(handle));
    if (r < 0) {
      for (const old of replaced) this.repin(old.map);
      const log = this.logBuf ? readNativeString(this.logBuf, this.logSize) : '';
      // libbpf names the program it was loading: "prog 'x': BPF program load failed: ...".
      const prog = messages.map((m) => /^prog '([^']+)': BPF program load failed/.exec(m)?.[1]).find((p) => p !== undefined);
      const what = prog ? `program ${prog} of BPF object ${this.path}` : `BPF object ${this.path}`;
      // Since 6.4 a log longer than the buffer keeps its tail and turns the errno into ENOSPC.
      const why = prog && log ? (-r === ENOSPC ? ' (the verifier rejected it; its log was longer than the buffer, the tail is kept)' : ' (the verifier rejected it)') : '';
      throw new BpfLoadError(`Cannot load ${what}: ${errnoName(-r)}${why}`, { log, libbpfMessages: messages, errno: -r });
    }
    this.loaded = true;
    this.report(messages);
    for (const old of replaced) this.copyInto(old.map, old.entries);
  }

  private applySizes(handle: ObjectHandle): void {
    for (const [name, n] of Object.entries(this.sizes)) {
      const m = this.lib.objectFindMapByName(handle, name);
      if (!m) continue;
      if (!Number.isInteger(n) || n < 1 || n > 0xffffffff) throw new BpfLoadError(`Cannot size map ${name} of ${this.path}: ${n} is not a positive 32-bit entry count`);
      const r = this.lib.mapSetMaxEntries(m, n);
      if (r < 0) throw new BpfLoadError(`Cannot size map ${name} of ${this.path} to ${n} entries: ${errnoName(-r)}`, { errno: -r });
    }
  }

  /**
   * The pinned maps whose size differs from the one asked for (same key and value sizes: anything
   * else is a layout change, which renames a map, and libbpf's refusal says so), read and unpinned.
   */
  private unpinResized(): Array<{ map: BpfMap; entries: Array<[Buffer, Buffer]> }> {
    const out: Array<{ map: BpfMap; entries: Array<[Buffer, Buffer]> }> = [];
    if (this.pinRoot === undefined) return out;
    try {
      for (const [name, n] of Object.entries(this.sizes)) {
        const path = join(this.pinRoot, name);
        if (!existsSync(path)) continue;
        const old = BpfMap.openPinned(path);
        const handle = this.lib.objectFindMapByName(this.handle!, name);
        const sameLayout = handle !== null && old.keySize === this.lib.mapKeySize(handle) && old.valueSize === this.lib.mapValueSize(handle) && old.type === this.lib.mapType(handle);
        if (old.maxEntries === n || !sameLayout) {
          old.close();
          continue;
        }
        out.push({ map: old, entries: old.entries() });
        unlinkSync(path);
        this.logger?.warn({ map: name, from: old.maxEntries, to: n, entries: out[out.length - 1]!.entries.length }, 'pinned map has another size than configured: replacing it and copying its entries');
      }
    } catch (err) {
      for (const old of out) this.repin(old.map);
      throw err;
    }
    return out;
  }

  private repin(old: BpfMap): void {
    const path = join(this.pinRoot!, old.name);
    try {
      rmSync(path, { force: true });
      old.pin(path);
    } catch (err) {
      this.logger?.error({ map: old.name, err: (err as Error).message }, 'cannot pin the old map back');
    } finally {
      old.close();
    }
  }

  /** Copies a replaced map's entries into its successor, in chunks: as many as fit, or all or none (copyWhole). */
  private copyInto(old: BpfMap, entries: Array<[Buffer, Buffer]>): void {
    const map = this.map(old.name);
    const chunk = 4096;
    let copied = 0;
    try {
      if (this.copyWhole.has(old.name) && entries.length > map.maxEntries) return;
      for (let i = 0; i < entries.length; i += chunk) {
        const part = entries.slice(i, i + chunk);
        try {
          map.updateBatch(Buffer.concat(part.map(([k]) => k)), Buffer.concat(part.map(([, v]) => v)), part.length);
          copied += part.length;
        } catch (err) {
          if (!(err instanceof BpfSyscallError) || !err.mapFull) throw err;
          copied += err.written ?? 0;
          break;
        }
      }
    } finally {
      this.resized.push({ map: old.name, from: old.maxEntries, to: map.maxEntries, copied, dropped: entries.length - copied });
      old.close();
    }
  }

  /** The names of the object's programs (its SEC() functions). */
  programNames(): string[] {
    const handle = this.live('list the programs of');
    const names: string[] = [];
    for (let p = this.lib.objectNextProgram(handle, null); p; p = this.lib.objectNextProgram(handle, p)) names.push(this.lib.programName(p));
    return names;
  }

  /** The names of the object's maps, .rodata/.bss/.data included. */
  mapNames(): string[] {
    const handle = this.live('list the maps of');
    const names: string[] = [];
    for (let m = this.lib.objectNextMap(handle, null); m; m = this.lib.objectNextMap(handle, m)) names.push(this.lib.mapName(m));
    return names;
  }

  /** The descriptor of a loaded program, owned by the object (valid until close()). */
  programFd(name: string): number {
    const prog = this.program(name);
    const fd = this.lib.programFd(prog);
    if (fd < 0) throw new BpfLoadError(`Program ${name} of ${this.path} is not loaded${this.loaded ? ' (autoload is off for it)' : ': call load() first'}`);
    return fd;
  }

  /** A map of the loaded object; the same BpfMap on every call. Valid until close(). */
  map(name: string): BpfMap {
    const cached = this.maps.get(name);
    if (cached) return cached;
    const handle = this.live('read a map of');
    const m = this.lib.objectFindMapByName(handle, name);
    if (!m) throw new BpfLoadError(`BPF object ${this.path} has no map ${JSON.stringify(name)}; it has ${this.mapNames().join(', ')}`);
    const fd = this.lib.mapFd(m);
    if (fd < 0) throw new BpfLoadError(`Map ${name} of ${this.path} has no descriptor: call load() first`);
    const map = new BpfMap({
      name,
      fd,
      keySize: this.lib.mapKeySize(m),
      valueSize: this.lib.mapValueSize(m),
      maxEntries: this.lib.mapMaxEntries(m),
      type: this.lib.mapType(m),
      ownsFd: false,
    });
    this.maps.set(name, map);
    return map;
  }

  /**
   * Closes the object and with it its descriptors; its BpfMaps stop working.
   * Pinned maps stay in the kernel, and so do programs attached to a hook
   * (tc holds its own reference).
   */
  close(): void {
    if (!this.handle) return;
    for (const m of this.maps.values()) m.invalidate();
    this.maps.clear();
    this.lib.objectClose(this.handle);
    this.handle = undefined;
    // libbpf kept a pointer to the log buffer; it is gone with the object.
    if (this.logBuf) freeNative(this.logBuf);
    this.logBuf = undefined;
  }

  private program(name: string): ProgramHandle {
    const handle = this.live('read a program of');
    const prog = this.lib.objectFindProgramByName(handle, name);
    if (!prog) throw new BpfLoadError(`BPF object ${this.path} has no program ${JSON.stringify(name)}; it has ${this.programNames().join(', ')}`);
    return prog;
  }

  private live(action: string): ObjectHandle {
    if (!this.handle) throw new BpfLoadError(`Cannot ${action} BPF object ${this.path}: it is closed`);
    return this.handle;
  }

  private report(messages: readonly string[]): void {
    for (const msg of messages) this.logger?.warn({ object: this.path }, `libbpf: ${msg}`);
  }
}
