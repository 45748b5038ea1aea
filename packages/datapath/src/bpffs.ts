/** Making sure /sys/fs/bpf is a BPF filesystem, as pinning needs (as Cilium does at start). */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { BpfLoadError } from './errors.js';

export const BPFFS = '/sys/fs/bpf';

export function bpffsMounted(path = BPFFS): boolean {
  return readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => {
    const [, mountpoint, type] = l.split(' ');
    return mountpoint === path && type === 'bpf';
  });
}

export function ensureBpffs(path = BPFFS): void {
  if (bpffsMounted(path)) return;
  try {
    execFileSync('mount', ['-t', 'bpf', 'bpf', path], { stdio: 'pipe' });
  } catch (err) {
    throw new BpfLoadError(`Cannot mount a BPF filesystem at ${path}: ${(err as Error).message}`);
  }
}
