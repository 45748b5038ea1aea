/**
 * The raw libbpf (1.1, libbpf.so.1) functions Weft calls, bound with koffi in
 * one place and loaded on first use. Struct layouts follow
 * /usr/include/bpf/libbpf.h; every `sz` field is the struct's own size, as
 * libbpf's forward/backward compatibility scheme requires.
 */
import koffi, { type TypeObject } from 'koffi';

type Fn = (...args: unknown[]) => unknown;

export interface Libbpf {
  open_file: Fn;
  object_load: Fn;
  object_close: Fn;
  find_program: Fn;
  program_fd: Fn;
  program_set_log_buf: Fn;
  find_map: Fn;
  map_fd: Fn;
  map_key_size: Fn;
  map_value_size: Fn;
  map_max_entries: Fn;
  map_type: Fn;
  update: Fn;
  lookup: Fn;
  delete_: Fn;
  next_key: Fn;
  update_batch: Fn;
  obj_get: Fn;
  obj_pin: Fn;
  map_info: Fn;
  tc_hook_create: Fn;
  tc_attach: Fn;
  tc_detach: Fn;
  tc_query: Fn;
  ringbuf_new: Fn;
  ringbuf_consume: Fn;
  ringbuf_free: Fn;
  close: Fn;
  types: {
    OpenOpts: TypeObject;
    TcHook: TypeObject;
    TcOpts: TypeObject;
    BatchOpts: TypeObject;
    MapInfo: TypeObject;
    RingCallback: TypeObject;
  };
}

let lib: Libbpf | undefined;

export function libbpf(): Libbpf {
  if (lib) return lib;
  const so = koffi.load('libbpf.so.1');
  const libc = koffi.load('libc.so.6');
  koffi.opaque('bpf_object');
  koffi.opaque('bpf_program');
  koffi.opaque('bpf_map');
  koffi.opaque('ring_buffer');
  const OpenOpts = koffi.struct('bpf_object_open_opts', {
    sz: 'size_t',
    object_name: 'const char *',
    relaxed_maps: 'bool',
    pin_root_path: 'const char *',
    kconfig: 'const char *',
    btf_custom_path: 'const char *',
    kernel_log_buf: 'void *',
    kernel_log_size: 'size_t',
    kernel_log_level: 'uint32_t',
  });
  const TcHook = koffi.struct('bpf_tc_hook', { sz: 'size_t', ifindex: 'int', attach_point: 'int', parent: 'uint32_t' });
  const TcOpts = koffi.struct('bpf_tc_opts', { sz: 'size_t', prog_fd: 'int', flags: 'uint32_t', prog_id: 'uint32_t', handle: 'uint32_t', priority: 'uint32_t' });
  const BatchOpts = koffi.struct('bpf_map_batch_opts', { sz: 'size_t', elem_flags: 'uint64_t', flags: 'uint64_t' });
  const MapInfo = koffi.struct('bpf_map_info', {
    type: 'uint32_t', id: 'uint32_t', key_size: 'uint32_t', value_size: 'uint32_t', max_entries: 'uint32_t', map_flags: 'uint32_t',
    name: koffi.array('char', 16, 'String'), ifindex: 'uint32_t', btf_vmlinux_value_type_id: 'uint32_t', netns_dev: 'uint64_t', netns_ino: 'uint64_t',
    btf_id: 'uint32_t', btf_key_type_id: 'uint32_t', btf_value_type_id: 'uint32_t', pad: 'uint32_t', map_extra: 'uint64_t',
  });
  const RingCallback = koffi.proto('int ring_buffer_sample_fn(void *ctx, void *data, size_t size)');
  lib = {
    open_file: so.func('bpf_object *bpf_object__open_file(const char *path, const bpf_object_open_opts *opts)'),
    object_load: so.func('int bpf_object__load(bpf_object *obj)'),
    object_close: so.func('void bpf_object__close(bpf_object *obj)'),
    find_program: so.func('bpf_program *bpf_object__find_program_by_name(const bpf_object *obj, const char *name)'),
    program_fd: so.func('int bpf_program__fd(const bpf_program *prog)'),
    program_set_log_buf: so.func('int bpf_program__set_log_buf(bpf_program *prog, void *log_buf, size_t log_size)'),
    find_map: so.func('bpf_map *bpf_object__find_map_by_name(const bpf_object *obj, const char *name)'),
    map_fd: so.func('int bpf_map__fd(const bpf_map *map)'),
    map_key_size: so.func('uint32_t bpf_map__key_size(const bpf_map *map)'),
    map_value_size: so.func('uint32_t bpf_map__value_size(const bpf_map *map)'),
    map_max_entries: so.func('uint32_t bpf_map__max_entries(const bpf_map *map)'),
    map_type: so.func('int bpf_map__type(const bpf_map *map)'),
    update: so.func('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
    lookup: so.func('int bpf_map_lookup_elem(int fd, const void *key, void *value)'),
    delete_: so.func('int bpf_map_delete_elem(int fd, const void *key)'),
    next_key: so.func('int bpf_map_get_next_key(int fd, const void *key, void *next_key)'),
    update_batch: so.func('int bpf_map_update_batch(int fd, const void *keys, const void *values, _Inout_ uint32_t *count, const bpf_map_batch_opts *opts)'),
    obj_get: so.func('int bpf_obj_get(const char *pathname)'),
    obj_pin: so.func('int bpf_obj_pin(int fd, const char *pathname)'),
    map_info: so.func('int bpf_obj_get_info_by_fd(int fd, _Out_ bpf_map_info *info, _Inout_ uint32_t *len)'),
    tc_hook_create: so.func('int bpf_tc_hook_create(bpf_tc_hook *hook)'),
    tc_attach: so.func('int bpf_tc_attach(const bpf_tc_hook *hook, _Inout_ bpf_tc_opts *opts)'),
    tc_detach: so.func('int bpf_tc_detach(const bpf_tc_hook *hook, const bpf_tc_opts *opts)'),
    tc_query: so.func('int bpf_tc_query(const bpf_tc_hook *hook, _Inout_ bpf_tc_opts *opts)'),
    ringbuf_new: so.func('ring_buffer *ring_buffer__new(int map_fd, ring_buffer_sample_fn *sample_cb, void *ctx, const void *opts)'),
    ringbuf_consume: so.func('int ring_buffer__consume(ring_buffer *rb)'),
    ringbuf_free: so.func('void ring_buffer__free(ring_buffer *rb)'),
    close: libc.func('int close(int fd)'),
    types: { OpenOpts, TcHook, TcOpts, BatchOpts, MapInfo, RingCallback },
  };
  return lib;
}

/** The errno of the last failed call on this thread. */
export function lastErrno(): number {
  return koffi.errno();
}

export { koffi };
