/**
 * The raw libbpf (1.1, libbpf.so.1) functions Weft calls, bound with koffi in
 * one place and loaded on first use; the loaded library is this package's only
 * module-level state.
 *
 * Conventions the rest of the package relies on:
 * - libbpf 1.x returns a negative errno from int-returning functions, and NULL
 *   with errno set from pointer-returning ones (`lastErrno()` reads it; koffi
 *   reads errno right after the native call, as __errno_location would).
 * - koffi 3 represents native pointers as bigint addresses; the `Handle` brands
 *   below keep an object pointer from being passed where a map pointer goes.
 * - Every libbpf `*_opts` struct starts with `sz`, its own size, which libbpf
 *   uses for forward/backward compatibility: it must be exactly sizeof() of the
 *   struct as the C header lays it out, padding and stubbed-out fields
 *   included. The layouts below follow /usr/include/bpf/libbpf.h and bpf.h of
 *   libbpf 1.1.2; libbpf.test.ts compiles the headers with clang and compares
 *   every offset and size.
 * - A Buffer passed to a function is only used during that call: koffi
 *   guarantees its address for no longer. Memory libbpf keeps a pointer to
 *   (the object's verifier log buffer) comes from koffi.alloc.
 * - libbpf's messages go through one registered print callback that formats
 *   them with vsnprintf and hands them to the innermost
 *   `captureLibbpfMessages`. The va_list arrives as an opaque pointer and is
 *   passed on as one: on x86-64 a va_list argument decays to a pointer to its
 *   one-element array, so this is exact there (other ABIs need checking).
 */
import koffi, { type TypeObject } from 'koffi';

declare const handleKind: unique symbol;
/** A native pointer of one libbpf type. */
export type Handle<K extends string> = bigint & { readonly [handleKind]: K };
export type ObjectHandle = Handle<'bpf_object'>;
export type ProgramHandle = Handle<'bpf_program'>;
export type MapHandle = Handle<'bpf_map'>;
/** Memory mmap(2) mapped (a ring buffer's pages). */
export type MappedMemory = Handle<'mmap'>;
/** Memory from koffi.alloc, stable for libbpf to keep. */
export type NativeMemory = Handle<'memory'>;

/** struct bpf_object_open_opts (libbpf.h), 80 bytes. */
export interface OpenOpts {
  sz: number;
  object_name?: string | null;
  relaxed_maps?: boolean;
  pin_root_path?: string | null;
  kconfig?: string | null;
  btf_custom_path?: string | null;
  kernel_log_buf?: NativeMemory | null;
  kernel_log_size?: number;
  kernel_log_level?: number;
}

/** struct bpf_tc_hook (libbpf.h), 24 bytes. */
export interface TcHook {
  sz: number;
  ifindex: number;
  attach_point: number;
  parent: number;
}

/** struct bpf_tc_opts (libbpf.h), 32 bytes; prog_id (and the others) are written back by attach and query. */
export interface TcOpts {
  sz: number;
  prog_fd: number;
  flags: number;
  prog_id: number;
  handle: number;
  priority: number;
}

/** struct bpf_map_info (linux/bpf.h), the fields up to map_extra: 88 bytes. Older or newer kernels copy min(theirs, ours). */
export interface MapInfo {
  type: number;
  id: number;
  key_size: number;
  value_size: number;
  max_entries: number;
  map_flags: number;
  name: string;
}

/**
 * struct bpf_test_run_opts (bpf.h), 80 bytes: BPF_PROG_TEST_RUN. Buffers are native memory
 * (allocNative); retval and the sizes are written back.
 */
export interface TestRunOpts {
  sz: number;
  data_in: NativeMemory | null;
  data_out: NativeMemory | null;
  data_size_in: number;
  data_size_out: number;
  ctx_in: NativeMemory | null;
  ctx_out: NativeMemory | null;
  ctx_size_in: number;
  ctx_size_out: number;
  retval: number;
  repeat: number;
  duration: number;
  flags: number;
  cpu: number;
  batch_size: number;
}

/** Exact sizes of the structs, as clang lays out the libbpf 1.1.2 headers on x86-64 (checked by libbpf.test.ts). */
export const STRUCT_SIZES = {
  bpf_object_open_opts: 80,
  bpf_tc_hook: 24,
  bpf_tc_opts: 32,
  bpf_map_batch_opts: 24,
  bpf_map_info: 88,
  bpf_test_run_opts: 80,
} as const;

export const LIBBPF_WARN = 0;
export const LIBBPF_INFO = 1;
export const LIBBPF_DEBUG = 2;

export interface Libbpf {
  // Objects and programs.
  objectOpenFile(path: string, opts: OpenOpts): ObjectHandle | null;
  objectLoad(obj: ObjectHandle): number;
  objectClose(obj: ObjectHandle): void;
  objectFindProgramByName(obj: ObjectHandle, name: string): ProgramHandle | null;
  objectNextProgram(obj: ObjectHandle, prev: ProgramHandle | null): ProgramHandle | null;
  programFd(prog: ProgramHandle): number;
  programName(prog: ProgramHandle): string;
  programSetLogLevel(prog: ProgramHandle, level: number): number;
  programSetLogBuf(prog: ProgramHandle, buf: NativeMemory | null, size: number): number;
  // Maps, through the object.
  objectFindMapByName(obj: ObjectHandle, name: string): MapHandle | null;
  objectNextMap(obj: ObjectHandle, prev: MapHandle | null): MapHandle | null;
  mapFd(map: MapHandle): number;
  mapName(map: MapHandle): string;
  mapKeySize(map: MapHandle): number;
  mapValueSize(map: MapHandle): number;
  mapMaxEntries(map: MapHandle): number;
  mapType(map: MapHandle): number;
  /** Before load only: the map is created with this many entries (a pinned map must already have as many). */
  mapSetMaxEntries(map: MapHandle, maxEntries: number): number;
  // Low-level bpf(2) wrappers (bpf.h): negative errno on failure.
  mapUpdateElem(fd: number, key: Buffer, value: Buffer, flags: number): number;
  mapLookupElem(fd: number, key: Buffer, value: Buffer): number;
  mapDeleteElem(fd: number, key: Buffer): number;
  mapGetNextKey(fd: number, key: Buffer | null, nextKey: Buffer): number;
  /** `count` is in/out (entries given, entries written); `opts` is an encoded bpf_map_batch_opts. */
  mapUpdateBatch(fd: number, keys: Buffer, values: Buffer, count: Uint32Array, opts: Buffer): number;
  /** `count` is in/out (keys given, keys deleted); stops at the first absent key with ENOENT. */
  mapDeleteBatch(fd: number, keys: Buffer, count: Uint32Array, opts: Buffer): number;
  /** BPF_PROG_TEST_RUN; `opts` receives retval and the output sizes. */
  progTestRun(progFd: number, opts: TestRunOpts): number;
  /**
   * Reads up to `count` entries after the position `inBatch` names (null: from the start) and
   * writes the next position to `outBatch`; `count` is in/out. -ENOENT once the walk is done
   * (the entries of that last call are still returned).
   */
  mapLookupBatch(fd: number, inBatch: Buffer | null, outBatch: Buffer, keys: Buffer, values: Buffer, count: Uint32Array, opts: Buffer): number;
  objGet(path: string): number;
  objPin(fd: number, path: string): number;
  /** libc's if_nametoindex: the interface's index in the caller's network namespace, 0 if there is none. */
  ifNameToIndex(name: string): number;
  /** `info` receives a bpf_map_info (decode with `decodeMapInfo`); `len` is in/out. */
  objGetInfoByFd(fd: number, info: Buffer, len: Uint32Array): number;
  numPossibleCpus(): number;
  // tc (netlink, in the caller's network namespace).
  tcHookCreate(hook: TcHook): number;
  tcHookDestroy(hook: TcHook): number;
  tcAttach(hook: TcHook, opts: TcOpts): number;
  tcDetach(hook: TcHook, opts: TcOpts): number;
  tcQuery(hook: TcHook, opts: TcOpts): number;
  // libc.
  /** mmap(2): MAP_FAILED (all ones) on failure, see lastErrno. */
  mmap(addr: null, length: number, prot: number, flags: number, fd: number, offset: number): MappedMemory;
  munmap(addr: MappedMemory, length: number): number;
  getpagesize(): number;
  close(fd: number): number;
  ifIndexToName(ifindex: number, buf: Buffer): bigint | null;
  /** The struct types, for sizes and for encoding. */
  readonly types: { OpenOpts: TypeObject; TcHook: TypeObject; TcOpts: TypeObject; BatchOpts: TypeObject; MapInfo: TypeObject; TestRunOpts: TypeObject };
  /** Message sinks of the active `captureLibbpfMessages` calls, innermost last. */
  readonly captures: string[][];
}

let lib: Libbpf | undefined;

/** The bound library, loaded on first use. Throws if libbpf.so.1 is missing. */
export function libbpf(): Libbpf {
  lib ??= bind();
  return lib;
}

function bind(): Libbpf {
  const so = koffi.load('libbpf.so.1');
  const libc = koffi.load('libc.so.6');
  // Anonymous struct types: koffi's type names are process-global, and a second
  // copy of this module (another dist, a test helper) must not collide.
  const OpenOpts = koffi.struct({
    sz: 'size_t',
    object_name: 'const char *',
    relaxed_maps: 'bool',
    pin_root_path: 'const char *',
    _attach_prog_fd_stub: 'uint32_t', // `__u32 :32; /* stub out now removed attach_prog_fd */`
    kconfig: 'const char *',
    btf_custom_path: 'const char *',
    kernel_log_buf: 'void *',
    kernel_log_size: 'size_t',
    kernel_log_level: 'uint32_t',
    // `size_t :0;` only pads the end to 8 bytes, which the size_t members already force.
  });
  const TcHook = koffi.struct({ sz: 'size_t', ifindex: 'int', attach_point: 'int', parent: 'uint32_t' });
  const TcOpts = koffi.struct({ sz: 'size_t', prog_fd: 'int', flags: 'uint32_t', prog_id: 'uint32_t', handle: 'uint32_t', priority: 'uint32_t' });
  const BatchOpts = koffi.struct({ sz: 'size_t', elem_flags: 'uint64_t', flags: 'uint64_t' });
  const MapInfo = koffi.struct({
    type: 'uint32_t',
    id: 'uint32_t',
    key_size: 'uint32_t',
    value_size: 'uint32_t',
    max_entries: 'uint32_t',
    map_flags: 'uint32_t',
    name: koffi.array('char', 16, 'String'),
    ifindex: 'uint32_t',
    btf_vmlinux_value_type_id: 'uint32_t',
    netns_dev: 'uint64_t',
    netns_ino: 'uint64_t',
    btf_id: 'uint32_t',
    btf_key_type_id: 'uint32_t',
    btf_value_type_id: 'uint32_t',
    _pad: 'uint32_t',
    map_extra: 'uint64_t',
  });
  const TestRunOpts = koffi.struct({
    sz: 'size_t',
    data_in: 'void *',
    data_out: 'void *',
    data_size_in: 'uint32_t',
    data_size_out: 'uint32_t',
    ctx_in: 'void *',
    ctx_out: 'void *',
    ctx_size_in: 'uint32_t',
    ctx_size_out: 'uint32_t',
    retval: 'uint32_t',
    repeat: 'int',
    duration: 'uint32_t',
    flags: 'uint32_t',
    cpu: 'uint32_t',
    batch_size: 'uint32_t',
  });
  for (const [name, type] of [['bpf_object_open_opts', OpenOpts], ['bpf_tc_hook', TcHook], ['bpf_tc_opts', TcOpts], ['bpf_map_batch_opts', BatchOpts], ['bpf_map_info', MapInfo], ['bpf_test_run_opts', TestRunOpts]] as const) {
    // A mismatch here means a koffi change, not a libbpf one: refuse to pass wrong `sz` values to libbpf.
    if (koffi.sizeof(type) !== STRUCT_SIZES[name]) throw new Error(`koffi lays out struct ${name} in ${koffi.sizeof(type)} bytes, expected ${STRUCT_SIZES[name]}`);
  }
  // The format string is passed straight back to vsnprintf, so it stays a raw pointer.
  const PrintFn = koffi.proto('int wtdp_libbpf_print_fn(int level, void *format, void *args)');
  const TcHookPtr = koffi.pointer(TcHook);
  const OpenOptsPtr = koffi.pointer(OpenOpts);

  const captures: string[][] = [];
  const vsnprintf = libc.func('int vsnprintf(void *str, size_t size, void *format, void *args)');
  const line = Buffer.alloc(16 * 1024);
  const onPrint = (level: number, format: bigint, args: bigint): number => {
    // Debug output is verbose and never shown: do not even format it.
    if (level >= LIBBPF_DEBUG) return 0;
    const n = vsnprintf(line, line.length, format, args) as number;
    if (n < 0) return 0;
    let text = line.toString('utf8', 0, Math.min(n, line.length - 1));
    if (n >= line.length) text += ' [truncated]';
    text = text.replace(/^libbpf: /, '').trimEnd();
    const sink = captures[captures.length - 1];
    if (sink) sink.push(text);
    else if (level === LIBBPF_WARN) process.stderr.write(`libbpf: ${text}\n`);
    return 0;
  };
  // Registered for the life of the process, like the library itself.
  const printCallback = koffi.register(onPrint, koffi.pointer(PrintFn));
  so.func('void *libbpf_set_print(void *fn)')(printCallback);

  return {
    objectOpenFile: so.func('bpf_object__open_file', 'void *', ['const char *', OpenOptsPtr]),
    objectLoad: so.func('int bpf_object__load(void *obj)'),
    objectClose: so.func('void bpf_object__close(void *obj)'),
    objectFindProgramByName: so.func('void *bpf_object__find_program_by_name(void *obj, const char *name)'),
    objectNextProgram: so.func('void *bpf_object__next_program(void *obj, void *prev)'),
    programFd: so.func('int bpf_program__fd(void *prog)'),
    programName: so.func('const char *bpf_program__name(void *prog)'),
    programSetLogLevel: so.func('int bpf_program__set_log_level(void *prog, uint32_t level)'),
    programSetLogBuf: so.func('int bpf_program__set_log_buf(void *prog, void *buf, size_t size)'),
    objectFindMapByName: so.func('void *bpf_object__find_map_by_name(void *obj, const char *name)'),
    objectNextMap: so.func('void *bpf_object__next_map(void *obj, void *prev)'),
    mapFd: so.func('int bpf_map__fd(void *map)'),
    mapName: so.func('const char *bpf_map__name(void *map)'),
    mapKeySize: so.func('uint32_t bpf_map__key_size(void *map)'),
    mapValueSize: so.func('uint32_t bpf_map__value_size(void *map)'),
    mapMaxEntries: so.func('uint32_t bpf_map__max_entries(void *map)'),
    mapType: so.func('int bpf_map__type(void *map)'),
    mapSetMaxEntries: so.func('int bpf_map__set_max_entries(void *map, uint32_t max_entries)'),
    mapUpdateElem: so.func('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
    mapLookupElem: so.func('int bpf_map_lookup_elem(int fd, const void *key, void *value)'),
    mapDeleteElem: so.func('int bpf_map_delete_elem(int fd, const void *key)'),
    mapGetNextKey: so.func('int bpf_map_get_next_key(int fd, const void *key, void *next_key)'),
    mapUpdateBatch: so.func('int bpf_map_update_batch(int fd, const void *keys, const void *values, void *count, const void *opts)'),
    mapDeleteBatch: so.func('int bpf_map_delete_batch(int fd, const void *keys, void *count, const void *opts)'),
    progTestRun: so.func('bpf_prog_test_run_opts', 'int', ['int', koffi.inout(koffi.pointer(TestRunOpts))]),
    mapLookupBatch: so.func('int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, void *count, const void *opts)'),
    objGet: so.func('int bpf_obj_get(const char *pathname)'),
    objPin: so.func('int bpf_obj_pin(int fd, const char *pathname)'),
    objGetInfoByFd: so.func('int bpf_obj_get_info_by_fd(int fd, void *info, void *info_len)'),
    numPossibleCpus: so.func('int libbpf_num_possible_cpus(void)'),
    tcHookCreate: so.func('bpf_tc_hook_create', 'int', [TcHookPtr]),
    tcHookDestroy: so.func('bpf_tc_hook_destroy', 'int', [TcHookPtr]),
    tcAttach: so.func('bpf_tc_attach', 'int', [TcHookPtr, koffi.inout(koffi.pointer(TcOpts))]),
    tcDetach: so.func('bpf_tc_detach', 'int', [TcHookPtr, koffi.pointer(TcOpts)]),
    tcQuery: so.func('bpf_tc_query', 'int', [TcHookPtr, koffi.inout(koffi.pointer(TcOpts))]),
    ifNameToIndex: libc.func('unsigned int if_nametoindex(const char *ifname)'),
    mmap: libc.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, intptr_t offset)'),
    munmap: libc.func('int munmap(void *addr, size_t length)'),
    getpagesize: libc.func('int getpagesize(void)'),
    close: libc.func('int close(int fd)'),
    ifIndexToName: libc.func('void *if_indextoname(unsigned int ifindex, void *ifname)'),
    types: { OpenOpts, TcHook, TcOpts, BatchOpts, MapInfo, TestRunOpts },
    captures,
  };
}

/**
 * Runs `fn` and returns what libbpf printed meanwhile (warnings and info, one
 * string per message, without the "libbpf: " prefix). Captures nest; a message
 * goes to the innermost one. Outside any capture, warnings go to stderr as
 * libbpf's default printer would.
 */
export function captureLibbpfMessages<T>(fn: () => T): { result: T; messages: string[] } {
  const { captures } = libbpf();
  const messages: string[] = [];
  captures.push(messages);
  try {
    return { result: fn(), messages };
  } finally {
    captures.splice(captures.lastIndexOf(messages), 1);
  }
}

/** The errno of the last failed native call on this thread. */
export function lastErrno(): number {
  return koffi.errno();
}

/** Decodes the bpf_map_info that bpf_obj_get_info_by_fd wrote into `buf`. */
export function decodeMapInfo(buf: Buffer): MapInfo {
  return koffi.decode(buf, libbpf().types.MapInfo) as MapInfo;
}

/** Encodes a bpf_map_batch_opts with its `sz` set. */
export function encodeBatchOpts(elemFlags: number, flags = 0): Buffer {
  const { BatchOpts } = libbpf().types;
  const buf = Buffer.alloc(koffi.sizeof(BatchOpts));
  koffi.encode(buf, BatchOpts, { sz: koffi.sizeof(BatchOpts), elem_flags: elemFlags, flags });
  return buf;
}

/** Zeroed native memory that stays put until `freeNative`; for buffers libbpf keeps a pointer to. */
export function allocNative(size: number): NativeMemory {
  const mem = koffi.alloc('uint8_t', size) as NativeMemory;
  new Uint8Array(koffi.view(mem, size)).fill(0);
  return mem;
}

export function freeNative(mem: NativeMemory): void {
  koffi.free(mem);
}

/** The NUL-terminated text at the start of native memory of `size` bytes. */
export function readNativeString(mem: NativeMemory, size: number): string {
  const bytes = new Uint8Array(koffi.view(mem, size));
  const end = bytes.indexOf(0);
  return Buffer.from(bytes.buffer, bytes.byteOffset, end < 0 ? size : end).toString('utf8');
}

/** An ArrayBuffer over `size` bytes of native memory at `ptr` (no copy: valid while the memory is). */
export function nativeView(ptr: bigint, size: number): ArrayBuffer {
  return koffi.view(ptr, size);
}

/** The struct type objects' sizes and member offsets, for the layout test. */
export function structLayouts(): Record<string, { size: number; offsets: Record<string, number> }> {
  const t = libbpf().types;
  const out: Record<string, { size: number; offsets: Record<string, number> }> = {};
  for (const [name, type] of [['bpf_object_open_opts', t.OpenOpts], ['bpf_tc_hook', t.TcHook], ['bpf_tc_opts', t.TcOpts], ['bpf_map_batch_opts', t.BatchOpts], ['bpf_map_info', t.MapInfo], ['bpf_test_run_opts', t.TestRunOpts]] as const) {
    const offsets: Record<string, number> = {};
    for (const member of Object.keys(type.members ?? {})) if (!member.startsWith('_')) offsets[member] = koffi.offsetof(type, member);
    out[name] = { size: koffi.sizeof(type), offsets };
  }
  return out;
}
