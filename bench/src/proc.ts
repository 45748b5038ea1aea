/** Processes inside network namespaces, and the C load generator, shared by the datapath benchmarks. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
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

/** USER_HZ: the unit of /proc/<pid>/stat's times (100 on every Linux ABI). */
const TICKS_PER_S = 100;

/** CPU seconds a process has used (utime + stime, /proc/PID/stat fields 14 and 15). */
export function pidCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / TICKS_PER_S;
}

/** CPU time so far (user + system, seconds) of each process whose command line matches. */
export function cpuSeconds(cmdline: RegExp): Map<number, number> {
  const out = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (!cmdline.test(readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' '))) continue;
      out.set(Number(entry), pidCpuSeconds(Number(entry)));
    } catch {
      // The process ended between readdir and read: it used nothing more here.
    }
  }
  return out;
}

/** How many CPUs the matching processes used while `fn` ran (CPU seconds / wall seconds). */
export async function cpuWhile<T>(cmdline: RegExp, fn: () => Promise<T>): Promise<{ result: T; cpus: number }> {
  const before = cpuSeconds(cmdline);
  const t0 = performance.now();
  const result = await fn();
  const wall = (performance.now() - t0) / 1000;
  let used = 0;
  for (const [pid, s] of cpuSeconds(cmdline)) used += s - (before.get(pid) ?? 0);
  return { result, cpus: wall > 0 ? used / wall : 0 };
}
