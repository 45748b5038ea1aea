/**
 * A container's process for the lab kubelet: the command runs in a private mount namespace whose
 * root is an overlay of the machine's root with its writes kept in a tmpfs, so a pod's mountPaths
 * (/etc/weft/..., /host/opt/cni/bin, /var/run/secrets/...) can exist for it without anything being
 * created on the machine. /proc, /sys, /dev and /run/netns are the machine's, as a host-network
 * container sees them, and mounts made on the machine later (a pod's network namespace) reach it
 * (slave propagation). Each volume directory or file is bind-mounted at its mountPath, read-only
 * where the pod says so. With `netns`, the process also enters that network namespace.
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
  log: string;
}

/** A word for sh, quoted. */
const q = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;

/** The shell script that builds the root and runs `argv` in it (pure: tested without root). */
export function containerScript(root: string, mounts: ContainerMount[], argv: string[], env: Record<string, string>, links: { path: string; to: string }[] = []): string {
  // The overlay's options cannot quote: the lab's own directories only.
  if (!/^\/[\w./-]+$/.test(root)) throw new LabError(`pod directory ${JSON.stringify(root)} must be an absolute path of letters, digits, '_', '.', '-' and '/'`);
  const r = (p: string): string => q(join(root, 'root', p));
  const lines = [
    'set -eu',
    `mkdir -p ${q(join(root, 'layer'))} ${q(join(root, 'root'))}`,
    `mount -t tmpfs weft-pod ${q(join(root, 'layer'))}`,
    `mkdir -p ${q(join(root, 'layer', 'upper'))} ${q(join(root, 'layer', 'work'))}`,
    `mount -t overlay weft-pod -o lowerdir=/,upperdir=${join(root, 'layer', 'upper')},workdir=${join(root, 'layer', 'work')} ${q(join(root, 'root'))}`,
    ...['/proc', '/sys', '/dev', '/run/netns'].map((m) => `mount --rbind ${q(m)} ${r(m)}`),
  ];
  for (const m of mounts) {
    if (!m.target.startsWith('/') || m.target.split('/').includes('..')) throw new LabError(`mount target ${JSON.stringify(m.target)} is not an absolute path`);
    lines.push(
      `if [ -d ${q(m.source)} ]; then mkdir -p ${r(m.target)}; else mkdir -p "$(dirname ${r(m.target)})"; touch ${r(m.target)}; fi`,
      `mount --bind ${q(m.source)} ${r(m.target)}`,
    );
    if (m.readOnly) lines.push(`mount -o remount,bind,ro ${r(m.target)}`);
  }
  for (const l of links) lines.push(`mkdir -p "$(dirname ${r(l.path)})"`, `ln -sfn ${q(l.to)} ${r(l.path)}`);
  const envArgs = Object.entries(env).map(([k, v]) => q(`${k}=${v}`));
  lines.push(`exec chroot ${q(join(root, 'root'))} /usr/bin/env -i ${envArgs.join(' ')} ${argv.map(q).join(' ')}`);
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

/** Starts the container's process (detached, logging to `log`); it lives until killed. */
export function startContainer(c: ContainerProcess): ChildProcess {
  mkdirSync(c.dir, { recursive: true });
  const mounts = c.mounts.map((m) => ({ ...m, target: resolveInRoot(m.target) }));
  const links = (c.links ?? []).map((l) => ({ ...l, path: resolveInRoot(l.path) }));
  const prefix = c.netns ? ['nsenter', `--net=/var/run/netns/${c.netns}`, '--'] : [];
  const argv = [...prefix, 'unshare', '--mount', '--propagation', 'slave', '--', 'sh', '-c', containerScript(c.dir, mounts, c.argv, c.env, links)];
  mkdirSync(join(c.log, '..'), { recursive: true });
  const out = openSync(c.log, 'a');
  const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', out, out] });
  closeSync(out);
  return child;
}
