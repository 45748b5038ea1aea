/**
 * A container's process for the lab kubelet: the command runs in a private mount namespace whose
 * root is an overlay of the machine's root with its writes kept in a tmpfs, so a pod's mountPaths
 * (/etc/weft/..., /host/opt/cni/bin, /var/run/secrets/...) can exist for it without anything being
 * created on the machine. /proc, /sys and /run/netns are the machine's, and mounts made on the
 * machine later (a pod's network namespace) reach it (slave propagation). /dev is the machine's for
 * a privileged container; any other gets its own (a tmpfs with null, zero, full, random, urandom
 * and tty), so what it writes there (its termination message) stays its own. Each volume directory
 * or file is bind-mounted at its mountPath, read-only where the pod says so. With `netns`, the
 * process also enters that network namespace.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, lstatSync, mkdirSync, openSync, readlinkSync } from 'node:fs';
import { join, posix } from 'node:path';
import { LabError } from '../errors.js';

export interface ContainerMount {
  /** A directory or file on the machine. */
  source: string;
  /** Where the container sees it. */
  target: string;
  readOnly?: boolean;
}

export interface ContainerProcess {
  /** The pod's working directory on the machine: the container's root is built under it. */
  dir: string;
  argv: string[];
  env: Record<string, string>;
  mounts: ContainerMount[];
  /** Symbolic links in the container's root (an image's `/usr/local/bin/weft`). */
  links?: { path: string; to: string }[];
  netns?: string;
  /** The machine's /dev (a privileged container); otherwise a private one. */
  hostDev?: boolean;
  log: string;
}

export type RootSpec = Pick<ContainerProcess, 'dir' | 'argv' | 'env' | 'mounts' | 'links' | 'hostDev'>;

const DEVICES = ['null', 'zero', 'full', 'random', 'urandom', 'tty'];

/** A word for sh, quoted. */
const q = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;

/** The shell script that builds the root and runs `argv` in it (pure: tested without root). */
export function containerScript(c: RootSpec): string {
  const root = c.dir;
  // The overlay's options cannot quote: the lab's own directories only.
  if (!/^\/[\w./-]+$/.test(root)) throw new LabError(`pod directory ${JSON.stringify(root)} must be an absolute path of letters, digits, '_', '.', '-' and '/'`);
  const r = (p: string): string => q(join(root, 'root', p));
  const lines = [
    'set -eu',
    `mkdir -p ${q(join(root, 'layer'))} ${q(join(root, 'root'))}`,
    `mount -t tmpfs weft-pod ${q(join(root, 'layer'))}`,
    `mkdir -p ${q(join(root, 'layer', 'upper'))} ${q(join(root, 'layer', 'work'))}`,
    `mount -t overlay weft-pod -o lowerdir=/,upperdir=${join(root, 'layer', 'upper')},workdir=${join(root, 'layer', 'work')} ${q(join(root, 'root'))}`,
    ...['/proc', '/sys', '/run/netns', ...(c.hostDev ? ['/dev'] : [])].map((m) => `mount --rbind ${q(m)} ${r(m)}`),
  ];
  if (!c.hostDev) {
    lines.push(`mount -t tmpfs -o mode=755,nosuid weft-dev ${r('/dev')}`);
    for (const d of DEVICES) lines.push(`touch ${r(`/dev/${d}`)}`, `mount --bind /dev/${d} ${r(`/dev/${d}`)}`);
    lines.push(`mkdir ${r('/dev/shm')}`, `mount -t tmpfs -o mode=1777,nosuid,nodev shm ${r('/dev/shm')}`);
    for (const [name, to] of [['fd', '/proc/self/fd'], ['stdin', '/proc/self/fd/0'], ['stdout', '/proc/self/fd/1'], ['stderr', '/proc/self/fd/2']] as const) lines.push(`ln -s ${to} ${r(`/dev/${name}`)}`);
  }
  for (const m of c.mounts) {
    if (!m.target.startsWith('/') || m.target.split('/').includes('..')) throw new LabError(`mount target ${JSON.stringify(m.target)} is not an absolute path`);
    lines.push(
      `if [ -d ${q(m.source)} ]; then mkdir -p ${r(m.target)}; else mkdir -p "$(dirname ${r(m.target)})"; touch ${r(m.target)}; fi`,
      `mount --bind ${q(m.source)} ${r(m.target)}`,
    );
    if (m.readOnly) lines.push(`mount -o remount,bind,ro ${r(m.target)}`);
  }
  for (const l of c.links ?? []) lines.push(`mkdir -p "$(dirname ${r(l.path)})"`, `ln -sfn ${q(l.to)} ${r(l.path)}`);
  const envArgs = Object.entries(c.env).map(([k, v]) => q(`${k}=${v}`));
  lines.push(`exec chroot ${q(join(root, 'root'))} /usr/bin/env -i ${envArgs.join(' ')} ${c.argv.map(q).join(' ')}`);
  return `${lines.join('\n')}\n`;
}

/**
 * `path` with its symbolic links resolved as they are in the container's root, which is the
 * machine's: /var/run/weft is /run/weft there. Binding at a path through an absolute link would
 * otherwise land on the machine's own directory.
 */
export function resolveInRoot(path: string, depth = 0): string {
  if (depth > 40) throw new LabError(`mount target ${JSON.stringify(path)}: too many symbolic links`);
  const parts = path.split('/').filter(Boolean);
  let at = '/';
  for (const [i, part] of parts.entries()) {
    const next = posix.join(at, part);
    let link: string | undefined;
    try {
      link = lstatSync(next).isSymbolicLink() ? readlinkSync(next) : undefined;
    } catch {
      // Does not exist on the machine: created in the container's root as it is.
      return posix.join(next, ...parts.slice(i + 1));
    }
    at = link === undefined ? next : resolveInRoot(posix.resolve(at, link), depth + 1);
  }
  return at;
}

/** The command line that builds the root and runs the process in it, in `netns` if given. */
function rootArgv(c: RootSpec & { netns?: string }): string[] {
  mkdirSync(c.dir, { recursive: true });
  const spec = { ...c, mounts: c.mounts.map((m) => ({ ...m, target: resolveInRoot(m.target) })), links: (c.links ?? []).map((l) => ({ ...l, path: resolveInRoot(l.path) })) };
  const prefix = c.netns ? ['nsenter', `--net=/var/run/netns/${c.netns}`, '--'] : [];
  return [...prefix, 'unshare', '--mount', '--propagation', 'slave', '--', 'sh', '-c', containerScript(spec)];
}

/** Starts the container's process (detached, in its own process group, logging to `log`); it lives until killed. */
export function startContainer(c: ContainerProcess): ChildProcess {
  const argv = rootArgv(c);
  mkdirSync(join(c.log, '..'), { recursive: true });
  const out = openSync(c.log, 'a');
  const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', out, out] });
  closeSync(out);
  return child;
}

/** Runs a short process in its own root with `input` on its stdin, as a runtime runs a CNI plugin; resolves with what it printed and its exit code. */
export function runInRoot(c: RootSpec & { input: string; timeoutMs: number }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const argv = rootArgv(c);
  return new Promise((done, fail) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], timeout: c.timeoutMs, killSignal: 'SIGKILL' });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
    // A process that exits without reading its input (EPIPE) says why in its exit code and output.
    child.stdin.on('error', () => undefined);
    child.stdin.end(c.input);
  });
}
