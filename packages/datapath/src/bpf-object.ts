/**
 * BpfObject: one compiled object file (bpf/build/*.o), opened with a pin
 * root so that maps declared LIBBPF_PIN_BY_NAME are pinned there, or reused
 * when already pinned. Two objects opened with the same root share maps; an
 * agent that restarts finds its maps, and their contents, again.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { BpfLoadError } from './errors.js';
import { BpfMap } from './bpf-map.js';
import { lastErrno, libbpf } from './libbpf.js';

const LOG_SIZE = 4 << 20;

export class BpfObject {
  private loaded = false;
  private readonly maps = new Map<string, BpfMap>();
  /** Per-program verifier log buffers; libbpf fills them when a load fails. */
  private readonly logs = new Map<string, Buffer>();

  private constructor(
    readonly path: string,
    private handle: unknown,
  ) {}

  static open(path: string, options: { pinRoot?: string; programs?: string[] } = {}): BpfObject {
    if (!existsSync(path)) throw new BpfLoadError(`Cannot open BPF object ${path}: no such file (build it with hack/build-bpf.sh)`);
    if (options.pinRoot) mkdirSync(options.pinRoot, { recursive: true });
    const l = libbpf();
    const opts = { sz: Number(l.types.OpenOpts.size), object_name: null, relaxed_maps: false, pin_root_path: options.pinRoot ?? null, kconfig: null, btf_custom_path: null, kernel_log_buf: null, kernel_log_size: 0, kernel_log_level: 0 };
    const handle = l.open_file(path, opts);
    if (!handle) throw new BpfLoadError(`Cannot open BPF object ${path}: errno ${lastErrno()}`);
    const obj = new BpfObject(path, handle);
    for (const name of options.programs ?? []) obj.attachLogBuffer(name);
    return obj;
  }

  /** Collect the verifier log of `program` if its load fails (called for every program we load). */
  private attachLogBuffer(program: string): void {
    const l = libbpf();
    const prog = l.find_program(this.handle, program);
    if (!prog) throw new BpfLoadError(`BPF object ${this.path} has no program ${JSON.stringify(program)}`);
    const buf = Buffer.alloc(LOG_SIZE);
    l.program_set_log_buf(prog, buf, buf.length);
    this.logs.set(program, buf);
  }

  /** Loads every program (the verifier runs now) and creates or reuses the maps. */
  load(): void {
    if (this.loaded) return;
    const r = libbpf().object_load(this.handle) as number;
    if (r < 0) {
      const log = [...this.logs.entries()].map(([name, buf]) => {
        const text = buf.toString('utf8', 0, buf.indexOf(0) >= 0 ? buf.indexOf(0) : buf.length);
        return text ? `[${name}]\n${text.split('\n').slice(-40).join('\n')}` : '';
      }).filter(Boolean).join('\n');
      throw new BpfLoadError(`Cannot load BPF object ${this.path}: error ${-r}${log ? '' : ' (no verifier output; see the libbpf messages on stderr)'}`, log);
    }
    this.loaded = true;
  }

  programFd(name: string): number {
    const l = libbpf();
    const prog = l.find_program(this.handle, name);
    if (!prog) throw new BpfLoadError(`BPF object ${this.path} has no program ${JSON.stringify(name)}`);
    const fd = l.program_fd(prog) as number;
    if (fd < 0) throw new BpfLoadError(`Program ${name} of ${this.path} is not loaded`);
    return fd;
  }

  map(name: string): BpfMap {
    let m = this.maps.get(name);
    if (m) return m;
    const l = libbpf();
    const handle = l.find_map(this.handle, name);
    if (!handle) throw new BpfLoadError(`BPF object ${this.path} has no map ${JSON.stringify(name)}`);
    const fd = l.map_fd(handle) as number;
    m = new BpfMap(name, fd, l.map_key_size(handle) as number, l.map_value_size(handle) as number, l.map_max_entries(handle) as number, l.map_type(handle) as number, false);
    this.maps.set(name, m);
    return m;
  }

  /** Closes the object; pinned maps and attached programs stay in the kernel. */
  close(): void {
    if (!this.handle) return;
    libbpf().object_close(this.handle);
    this.handle = null;
  }
}
