/**
 * tc attachment through libbpf's netlink helpers, in the caller's network
 * namespace. Attaching replaces what is there (BPF_TC_F_REPLACE), so an agent
 * upgrade swaps programs with no moment of an unfiltered interface.
 */
import { BpfAttachError } from './errors.js';
import { libbpf } from './libbpf.js';

const BPF_TC_INGRESS = 1;
const BPF_TC_EGRESS = 2;
const BPF_TC_F_REPLACE = 1;
const EEXIST = 17;
const ENOENT = 2;

export interface TcTarget {
  ifindex: number;
  direction: 'ingress' | 'egress';
  /** tc filter priority (default 1) and handle (default 1). */
  priority?: number;
  handle?: number;
}

function hook(t: TcTarget): Record<string, number> {
  return { sz: Number(libbpf().types.TcHook.size), ifindex: t.ifindex, attach_point: t.direction === 'ingress' ? BPF_TC_INGRESS : BPF_TC_EGRESS, parent: 0 };
}

export function attachTc(t: TcTarget & { programFd: number }): void {
  const l = libbpf();
  const h = hook(t);
  const r = l.tc_hook_create(h) as number;
  if (r < 0 && r !== -EEXIST) throw new BpfAttachError(`create clsact on ifindex ${t.ifindex}`, -r);
  const opts = { sz: Number(l.types.TcOpts.size), prog_fd: t.programFd, flags: BPF_TC_F_REPLACE, prog_id: 0, handle: t.handle ?? 1, priority: t.priority ?? 1 };
  const a = l.tc_attach(h, opts) as number;
  if (a < 0) throw new BpfAttachError(`attach program to ifindex ${t.ifindex} ${t.direction}`, -a);
}

export function detachTc(t: TcTarget): void {
  const l = libbpf();
  const opts = { sz: Number(l.types.TcOpts.size), prog_fd: 0, flags: 0, prog_id: 0, handle: t.handle ?? 1, priority: t.priority ?? 1 };
  const r = l.tc_detach(hook(t), opts) as number;
  if (r < 0 && r !== -ENOENT) throw new BpfAttachError(`detach program from ifindex ${t.ifindex} ${t.direction}`, -r);
}

/** The id of the program attached at the target, or undefined. */
export function queryTc(t: TcTarget): number | undefined {
  const l = libbpf();
  const opts: Record<string, number> = { sz: Number(l.types.TcOpts.size), prog_fd: 0, flags: 0, prog_id: 0, handle: t.handle ?? 1, priority: t.priority ?? 1 };
  const r = l.tc_query(hook(t), opts) as number;
  if (r === -ENOENT || r === -22) return undefined;
  if (r < 0) throw new BpfAttachError(`query ifindex ${t.ifindex} ${t.direction}`, -r);
  return opts.prog_id;
}
