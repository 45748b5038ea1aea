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

export const errorCodes = [NetCommandError.code] as const;
