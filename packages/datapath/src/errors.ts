/**
 * Errors of the datapath package. Each carries what an operator needs to act
 * without re-running anything: a load error ends with the verifier log and
 * libbpf's own messages, a syscall error names the operation, the map and the
 * errno, an attach error names the interface and the direction.
 */
import { constants } from 'node:os';
import { WeftError } from '@weft/common';

/**
 * errno numbers by name, inverted once. ENOTSUPP is kernel-internal and
 * missing from libc's table; 4000 and up are libbpf's own (libbpf.h).
 */
const ERRNO_NAMES = new Map<number, string>([[524, 'ENOTSUPP']]);
['LIBELF', 'FORMAT', 'KVERSION', 'ENDIAN', 'INTERNAL', 'RELOC', 'LOAD', 'VERIFY', 'PROG2BIG', 'KVER', 'PROGTYPE', 'WRNGPID', 'INVSEQ', 'NLPARSE'].forEach((name, i) =>
  ERRNO_NAMES.set(4000 + i, `LIBBPF_ERRNO__${name}`),
);
for (const [name, value] of Object.entries(constants.errno)) {
  // EAGAIN/EWOULDBLOCK, EOPNOTSUPP/ENOTSUP, EDEADLK/EDEADLOCK share numbers: keep the first, the common spelling.
  if (!ERRNO_NAMES.has(value)) ERRNO_NAMES.set(value, name);
}

/** "E2BIG (7)": the symbolic name and the number, as the kernel documentation spells them. */
export function errnoName(errno: number): string {
  return `${ERRNO_NAMES.get(errno) ?? 'errno'} (${errno})`;
}

/** How many trailing lines of the verifier log go into the message; `log` keeps all of it. */
const LOG_TAIL_LINES = 60;

function tail(text: string, lines: number): string {
  const all = text.trimEnd().split('\n');
  return all.length <= lines ? all.join('\n') : [`... (${all.length - lines} earlier lines in err.log)`, ...all.slice(-lines)].join('\n');
}

/**
 * Opening or loading a BPF object failed. For a verifier rejection the message
 * ends with the tail of the verifier log (the rejecting instruction is at the
 * end); `log` holds the whole log and `libbpfMessages` what libbpf said (which
 * program failed, pinned map mismatches, relocation failures).
 */
export class BpfLoadError extends WeftError {
  static readonly code = 'WEFT_ERR_BPF_LOAD';
  /** The verifier log of the program that failed, empty if the kernel gave none. */
  readonly log: string;
  readonly libbpfMessages: readonly string[];
  /** The errno behind the failure, when there is one. */
  readonly errno: number | undefined;
  constructor(message: string, details: { log?: string; libbpfMessages?: readonly string[]; errno?: number; cause?: unknown } = {}) {
    const log = details.log?.trim() ?? '';
    const messages = details.libbpfMessages ?? [];
    let full = message;
    if (messages.length > 0) full += `\n--- libbpf ---\n${messages.join('\n')}`;
    if (log) full += `\n--- verifier log ---\n${tail(log, LOG_TAIL_LINES)}`;
    super(BpfLoadError.code, full, details.cause === undefined ? undefined : { cause: details.cause });
    this.log = log;
    this.libbpfMessages = messages;
    this.errno = details.errno;
  }
}

/**
 * A bpf(2) operation on a map or object failed: "Cannot update map
 * weft_ipcache: E2BIG (7)". `errno` is positive.
 */
export class BpfSyscallError extends WeftError {
  static readonly code = 'WEFT_ERR_BPF_SYSCALL';
  readonly errno: number;
  /** e.g. "update map weft_ipcache". */
  readonly operation: string;
  /** For a batch: how many entries were processed, in order, before the failure. */
  readonly written: number | undefined;
  constructor(operation: string, errno: number, detail?: string, written?: number) {
    super(BpfSyscallError.code, `Cannot ${operation}: ${errnoName(errno)}${detail ? `: ${detail}` : ''}`);
    this.operation = operation;
    this.errno = errno;
    this.written = written;
  }

  /**
   * The map has no room for another entry: ENOSPC from an LPM trie, E2BIG from a hash map. (An
   * existing entry can always be overwritten; only new ones fail.)
   */
  get mapFull(): boolean {
    return this.errno === 28 || this.errno === 7;
  }
}

/**
 * Creating the clsact hook, attaching, detaching or querying a tc program
 * failed. The message names the interface (name and ifindex, as seen from the
 * caller's network namespace), the direction, the errno and the kernel's
 * extended error message when netlink gave one.
 */
export class BpfAttachError extends WeftError {
  static readonly code = 'WEFT_ERR_BPF_ATTACH';
  readonly errno: number;
  readonly ifindex: number;
  readonly direction: 'ingress' | 'egress';
  constructor(operation: string, target: { ifindex: number; ifname?: string | undefined; direction: 'ingress' | 'egress' }, errno: number, kernelMessages: readonly string[] = []) {
    const where = `${target.ifname ? `${target.ifname} (ifindex ${target.ifindex})` : `ifindex ${target.ifindex} (no such interface here)`} ${target.direction}`;
    const kernel = kernelMessages.length > 0 ? `; ${kernelMessages.join('; ')}` : '';
    super(BpfAttachError.code, `Cannot ${operation} ${where}: ${errnoName(errno)}${kernel}`);
    this.errno = errno;
    this.ifindex = target.ifindex;
    this.direction = target.direction;
  }
}

/**
 * A ring buffer record header the kernel cannot have written (a length beyond
 * the ring): the reader stops at it rather than read past the ring.
 */
export class RingBufferCorruptError extends WeftError {
  static readonly code = 'WEFT_ERR_RINGBUF_CORRUPT';
  constructor(ring: string, position: number, length: number, size: number) {
    super(RingBufferCorruptError.code, `${ring}: the record header at position ${position} claims ${length} bytes, more than the ring's ${size}`);
  }
}

export const errorCodes = [BpfLoadError.code, BpfSyscallError.code, BpfAttachError.code, RingBufferCorruptError.code] as const;
