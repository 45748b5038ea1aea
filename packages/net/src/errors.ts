/** Errors of the net package. */
import { WeftError } from '@weft/common';

/** An iproute2 (or sysctl) command failed; the message has the command and its stderr. */
export class NetCommandError extends WeftError {
  static readonly code = 'WEFT_ERR_NET_COMMAND';
  readonly stderr: string;
  readonly exitCode: number | null;
  constructor(command: string[], exitCode: number | null, stderr: string) {
    super(NetCommandError.code, `Command failed (exit ${exitCode}): ${command.join(' ')}: ${stderr.trim() || '(no output)'}`);
    this.stderr = stderr;
    this.exitCode = exitCode;
  }
}

/**
 * An argument that would reach an `ip` command line (or `ip -batch` text) is not one Weft may pass:
 * whitespace, a control or non-ASCII character, a character `ip -batch` interprets, or a bad
 * network namespace name. Raised before any process starts; the message quotes the argument.
 */
export class NetArgumentError extends WeftError {
  static readonly code = 'WEFT_ERR_NET_ARGUMENT';
  /** `what`: the command refused, e.g. "ip" or "ip -batch line 2"; `which`: e.g. "argument 3". */
  constructor(what: string, which: string, arg: unknown, problem: string) {
    const shown = typeof arg === 'string' ? JSON.stringify(arg.length > 80 ? `${arg.slice(0, 80)}...` : arg) : String(arg);
    super(NetArgumentError.code, `Refusing to run ${what}: ${which} ${shown} ${problem}`);
  }
}

/** A WireGuard device could not be reached or refused a request. */
export class WireGuardError extends WeftError {
  static readonly code = 'WEFT_ERR_WIREGUARD';
  constructor(message: string) {
    super(WireGuardError.code, message);
  }
}

/** A WireGuard key (file or published) is malformed, the wrong length, or exposed. */
export class WireGuardKeyError extends WeftError {
  static readonly code = 'WEFT_ERR_WIREGUARD_KEY';
  constructor(message: string) {
    super(WireGuardKeyError.code, message);
  }
}

/**
 * Kernel WireGuard was asked for (implementation 'kernel') but this kernel
 * has none: `ip link add type wireguard` answered that the device type is
 * unknown or not supported. The message quotes the kernel's answer.
 */
export class KernelWireGuardUnavailableError extends WeftError {
  static readonly code = 'WEFT_ERR_KERNEL_WIREGUARD_UNAVAILABLE';
  constructor(message: string) {
    super(KernelWireGuardUnavailableError.code, message);
  }
}

/** An IPsec input is malformed: mesh key, key id, node IP, CIDR or SPI; the message quotes the value. */
export class IpsecConfigError extends WeftError {
  static readonly code = 'WEFT_ERR_IPSEC_CONFIG';
  constructor(message: string) {
    super(IpsecConfigError.code, message);
  }
}

/**
 * The kernel's XFRM state contradicts what was asked: an SA with this SPI
 * already exists with another key (a new mesh key needs a new key id) or for
 * another peer (an SPI collision).
 */
export class IpsecStateError extends WeftError {
  static readonly code = 'WEFT_ERR_IPSEC_STATE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(IpsecStateError.code, message, options);
  }
}

export const errorCodes = [NetCommandError.code, NetArgumentError.code, WireGuardError.code, WireGuardKeyError.code, KernelWireGuardUnavailableError.code, IpsecConfigError.code, IpsecStateError.code] as const;
