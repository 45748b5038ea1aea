/** Running a system command and collecting its output, with a typed error on failure. */
import { spawn } from 'node:child_process';
import { NetCommandError } from './errors.js';

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** `env`: the child's whole environment (default: ours); values go to execve, never through a shell. */
export function run(command: string[], options: { input?: string; allowFail?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command[0]!, command.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], ...(options.env ? { env: options.env } : {}) });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err) => reject(new NetCommandError(command, null, err.message)));
    child.on('close', (code) => {
      if (code === 0 || options.allowFail) resolve({ stdout, stderr });
      else reject(new NetCommandError(command, code, stderr));
    });
    // A command that exits without reading its input must not crash us with EPIPE.
    child.stdin.on('error', () => undefined);
    if (options.input !== undefined) child.stdin.end(options.input);
    else child.stdin.end();
  });
}
