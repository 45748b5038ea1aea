/**
 * BPF_PROG_TEST_RUN for tc programs: runs a loaded program once on a crafted
 * frame, with real maps, without any interface. The kernel gives the skb the
 * loopback device (ifindex 1). Tests of the datapath use it to check verdicts,
 * rewritten frames and the mark a program leaves.
 */
import { BpfSyscallError } from './errors.js';
import koffi from 'koffi';
import { allocNative, freeNative, libbpf, STRUCT_SIZES, type NativeMemory } from './libbpf.js';

/** sizeof(struct __sk_buff) as linux/bpf.h lays it out; `mark` is at offset 8. */
const SKB_CTX_SIZE = 192;
const SKB_MARK = 8;
/** Room for the frame a program may grow (tunnel headers, NAT). */
const OUT_SLACK = 256;

export interface TestRunResult {
  /** The program's return value (TC_ACT_*). */
  retval: number;
  /** The frame as the program left it. */
  data: Buffer;
  /** skb->mark after the run. */
  mark: number;
  /** Mean run time per repetition, in nanoseconds (the kernel's measure). */
  durationNs: number;
}

/**
 * Runs tc program `progFd` on `frame` (Ethernet first), with `mark` as skb->mark, `repeat` times
 * (default once; the result is the last run's).
 */
export function testRunTc(progFd: number, frame: Buffer, options: { mark?: number; repeat?: number } = {}): TestRunResult {
  const lib = libbpf();
  const outSize = frame.length + OUT_SLACK;
  const mem: NativeMemory[] = [];
  const native = (size: number, from?: Buffer): NativeMemory => {
    const m = allocNative(size);
    mem.push(m);
    if (from) Buffer.from(koffi.view(m, size)).set(from);
    return m;
  };
  try {
    const ctx = Buffer.alloc(SKB_CTX_SIZE);
    ctx.writeUInt32LE((options.mark ?? 0) >>> 0, SKB_MARK);
    const dataOut = native(outSize);
    const ctxOut = native(SKB_CTX_SIZE);
    const opts = {
      sz: STRUCT_SIZES.bpf_test_run_opts,
      data_in: native(frame.length, frame),
      data_out: dataOut,
      data_size_in: frame.length,
      data_size_out: outSize,
      ctx_in: native(SKB_CTX_SIZE, ctx),
      ctx_out: ctxOut,
      ctx_size_in: SKB_CTX_SIZE,
      ctx_size_out: SKB_CTX_SIZE,
      retval: 0,
      repeat: options.repeat ?? 1,
      duration: 0,
      flags: 0,
      cpu: 0,
      batch_size: 0,
    };
    const r = lib.progTestRun(progFd, opts);
    if (r < 0) throw new BpfSyscallError(`test-run program fd ${progFd} on a ${frame.length}-byte frame`, -r);
    const copy = (m: NativeMemory, size: number): Buffer => Buffer.from(Buffer.from(koffi.view(m, size)));
    return { retval: opts.retval | 0, data: copy(dataOut, Math.min(opts.data_size_out, outSize)), mark: copy(ctxOut, SKB_CTX_SIZE).readUInt32LE(SKB_MARK), durationNs: opts.duration };
  } finally {
    for (const m of mem) freeNative(m);
  }
}
