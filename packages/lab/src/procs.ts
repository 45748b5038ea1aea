/** Long-lived lab processes: starting them detached inside a namespace, and waiting for them. */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { LabError } from './errors.js';

export type Progress = (step: string) => void;

/**
 * Starts a long-lived process inside a namespace, detached from us, logging to
 * `log`. Agents enter only the network namespace (nsenter --net), not the
 * private mount namespace `ip netns exec` creates, so the pod namespaces they
 * create under /var/run/netns are visible to everyone.
 */
export function spawnIn(ns: string, argv: string[], log: string, options: { cwd?: string; env?: NodeJS.ProcessEnv; netOnly?: boolean } = {}): number {
  mkdirSync(resolve(log, '..'), { recursive: true });
  const out = openSync(log, 'a');
  const prefix = options.netOnly ? ['nsenter', `--net=/var/run/netns/${ns}`, '--'] : ['ip', 'netns', 'exec', ns];
  const child = spawn(prefix[0]!, [...prefix.slice(1), ...argv], { detached: true, stdio: ['ignore', out, out], cwd: options.cwd, env: options.env ?? process.env });
  closeSync(out);
  child.unref();
  return child.pid ?? 0;
}

export function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-8).join('\n');
  } catch {
    return '(no log)';
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * WEFT_LAB_TIMEOUT_SCALE multiplies every timeout of the lab's waits (etcd, agents, encryption,
 * clustermesh, pods): the kernel lane (hack/kernel-lane) runs the lab under qemu TCG, some ten
 * times slower than a host, where a healthy agent takes most of the usual 60 s just to start.
 * Unset, the timeouts are as written; anything but a number >= 1 is refused.
 */
export function labTimeoutScale(): number {
  const raw = process.env.WEFT_LAB_TIMEOUT_SCALE;
  if (raw === undefined || raw === '') return 1;
  const scale = Number(raw);
  if (!Number.isFinite(scale) || scale < 1) throw new LabError(`Invalid WEFT_LAB_TIMEOUT_SCALE ${JSON.stringify(raw)}: use a number >= 1`);
  return scale;
}

export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, onTimeout: () => string): Promise<void> {
  timeoutMs *= labTimeoutScale();
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await check().catch((err: unknown) => {
      if (err instanceof LabError) throw err;
      return false;
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new LabError(`Timed out after ${timeoutMs / 1000}s waiting for ${what}: ${onTimeout()}`);
}


/**
 * Starts a long-lived process in the machine's own namespace, detached, logging to `log`; it
 * carries WEFT_LAB=1 in its environment, by which `weft lab down` finds it.
 */
export function spawnHost(argv: string[], log: string): number {
  mkdirSync(resolve(log, '..'), { recursive: true });
  const out = openSync(log, 'a');
  const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', out, out], env: { ...process.env, WEFT_LAB: '1' } });
  closeSync(out);
  child.unref();
  return child.pid ?? 0;
}
