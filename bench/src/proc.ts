/** Processes inside network namespaces, and the C load generator, shared by the datapath benchmarks. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

const REPO = join(__dirname, '..', '..');

export function inNs(ns: string, argv: string[], options: { detached?: boolean } = {}): ChildProcess {
  return spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'inherit'], detached: options.detached ?? false });
}

export async function output(child: ChildProcess): Promise<string> {
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise((r) => child.on('exit', r));
  return out;
}

/** The C load generator and server (bench/c/connbench.c), built on first use with the system compiler. */
export const CONNBENCH = join(REPO, 'bench', 'build', 'connbench');
export function buildConnbench(): void {
  execFileSync('mkdir', ['-p', join(REPO, 'bench', 'build')]);
  execFileSync('cc', ['-O2', '-pthread', '-o', CONNBENCH, join(REPO, 'bench', 'c', 'connbench.c')]);
}
