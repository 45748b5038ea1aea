/** Errors of the datapath package. */
import { WeftError } from '@weft/common';

const ERRNO: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 3: 'ESRCH', 4: 'EINTR', 7: 'E2BIG', 9: 'EBADF', 11: 'EAGAIN', 12: 'ENOMEM', 13: 'EACCES', 14: 'EFAULT',
  16: 'EBUSY', 17: 'EEXIST', 19: 'ENODEV', 22: 'EINVAL', 24: 'EMFILE', 28: 'ENOSPC', 95: 'EOPNOTSUPP', 524: 'ENOTSUPP',
};

export function errnoName(errno: number): string {
  return `${ERRNO[errno] ?? 'errno'} (${errno})`;
}

/** Loading a BPF object failed; for a verifier rejection the message carries the verifier log. */
export class BpfLoadError extends WeftError {
  static readonly code = 'WEFT_ERR_BPF_LOAD';
  readonly log: string;
  constructor(message: string, log = '') {
    super(BpfLoadError.code, log ? `${message}\n--- verifier log ---\n${log.trim()}` : message);
    this.log = log;
  }
}

/** A bpf(2) operation on a map or program failed. */
export class BpfSyscallError extends WeftError {
  static readonly code = 'WEFT_ERR_BPF_SYSCALL';
  readonly errno: number;
  constructor(action: string, errno: number) {
    super(BpfSyscallError.code, `Cannot ${action}: ${errnoName(errno)}`);
    this.errno = errno;
  }
}

/** Attaching or detaching a tc program failed. */
export class BpfAttachError extends WeftError {
  static readonly code = 'WEFT_ERR_BPF_ATTACH';
  readonly errno: number;
  constructor(action: string, errno: number) {
    super(BpfAttachError.code, `Cannot ${action}: ${errnoName(errno)}`);
    this.errno = errno;
  }
}

export const errorCodes = [BpfLoadError.code, BpfSyscallError.code, BpfAttachError.code] as const;
