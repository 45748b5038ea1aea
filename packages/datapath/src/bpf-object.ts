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
 * libbpf refuses to reuse a pin whose definition differs (type, sizes, max
 * entries, flags); that refusal is a BpfLoadError quoting libbpf.
 *
 * A failed load reports the verifier log: the object gets one log buffer in
 * its open options, which libbpf hands to the kernel when it retries a failed
 * program load at log level 1, so a successful load costs no log at all.
 */
import { existsSync, mkdirSync, statfsSync } from 'node:fs';
import type { Logger } from '@weft/common';
import { BpfMap } from './bpf-map.js';
import { BpfLoadError, errnoName } from './errors.js';
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
}

export class BpfObject {
  private handle: ObjectHandle | undefined;
  private logBuf: NativeMemory | undefined;
  private loaded = false;
  private readonly maps = new Map<string, BpfMap>();

  private constructor(
    readonly path: string,
    readonly pinRoot: string | undefined,
    handle: ObjectHandle,
    logBuf: NativeMemory,
    private readonly logSize: number,
    private readonly logger: Logger | undefined,
    private readonly lib: Libbpf,
  ) {
    this.handle = handle;
    this.logBuf = logBuf;
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
    const obj = new BpfObject(path, pinRoot, handle, logBuf, logSize, options.logger, lib);
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
    const { result: r, messages } = captureLibbpfMessages(() => this.lib.objectLoad(handle));
    if (r < 0) {
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
