/**
 * tc attachment through libbpf's netlink helpers (direct-action cls_bpf
 * filters on a clsact qdisc), always in the caller's network namespace: the
 * agent runs inside its node's namespace, and a test runs these under
 * `ip netns exec`.
 *
 * Attaching replaces what is at the same (direction, priority, handle)
 * (BPF_TC_F_REPLACE), so an agent upgrade swaps programs with no moment where
 * the interface is unfiltered. The clsact qdisc is created on demand and left
 * in place on detach (other filters may use it); destroyTcHook removes it.
 */
import { BpfAttachError } from './errors.js';
import { captureLibbpfMessages, libbpf, STRUCT_SIZES, type TcHook, type TcOpts } from './libbpf.js';

const BPF_TC_INGRESS = 1;
const BPF_TC_EGRESS = 2;
const BPF_TC_F_REPLACE = 1;
const ENOENT = 2;
const EINVAL = 22;
const EEXIST = 17;
const IF_NAMESIZE = 16;

export type TcDirection = 'ingress' | 'egress';

export interface TcTarget {
  ifindex: number;
  direction: TcDirection;
  /** tc filter priority, 1 (first) by default. */
  priority?: number;
  /** tc filter handle, 1 by default. */
  handle?: number;
}

export interface TcAttachOptions extends TcTarget {
  programFd: number;
}

/** The interface's name in the caller's namespace, for messages; undefined if it has none (gone, or never was). */
function ifname(ifindex: number): string | undefined {
  const buf = Buffer.alloc(IF_NAMESIZE);
  if (!libbpf().ifIndexToName(ifindex, buf)) return undefined;
  const end = buf.indexOf(0);
  return buf.toString('utf8', 0, end < 0 ? buf.length : end);
}

function hookOf(t: TcTarget): TcHook {
  return { sz: STRUCT_SIZES.bpf_tc_hook, ifindex: t.ifindex, attach_point: t.direction === 'ingress' ? BPF_TC_INGRESS : BPF_TC_EGRESS, parent: 0 };
}

function optsOf(t: TcTarget, programFd = 0, flags = 0): TcOpts {
  return { sz: STRUCT_SIZES.bpf_tc_opts, prog_fd: programFd, flags, prog_id: 0, handle: t.handle ?? 1, priority: t.priority ?? 1 };
}

function check(t: TcTarget): void {
  if (!Number.isInteger(t.ifindex) || t.ifindex <= 0) throw new RangeError(`tc: ifindex must be a positive integer, got ${t.ifindex}`);
  if (t.direction !== 'ingress' && t.direction !== 'egress') throw new RangeError(`tc: direction must be ingress or egress, got ${String(t.direction)}`);
  // libbpf answers EINVAL for these, which detach and query must be able to read as "nothing there".
  if (t.priority !== undefined && (!Number.isInteger(t.priority) || t.priority < 1 || t.priority > 0xffff)) throw new RangeError(`tc: priority must be 1-65535, got ${t.priority}`);
  if (t.handle !== undefined && (!Number.isInteger(t.handle) || t.handle < 1 || t.handle > 0xffffffff)) throw new RangeError(`tc: handle must be a positive 32-bit integer, got ${t.handle}`);
}

function fail(operation: string, t: TcTarget, errno: number, messages: readonly string[]): BpfAttachError {
  // libbpf relays netlink's extended ack as "Kernel error message: ..."; that is the useful part.
  const kernel = messages.map((m) => m.replace(/^Kernel error message: /, 'kernel: '));
  return new BpfAttachError(operation, { ifindex: t.ifindex, ifname: ifname(t.ifindex), direction: t.direction }, errno, kernel);
}

/**
 * Attaches `programFd` at the target, creating the clsact qdisc if needed and
 * replacing a filter already there. Returns the attached program's id.
 */
export function attachTc(t: TcAttachOptions): number {
  check(t);
  const lib = libbpf();
  const hook = hookOf(t);
  const created = captureLibbpfMessages(() => lib.tcHookCreate(hook));
  if (created.result < 0 && created.result !== -EEXIST) throw fail('create the clsact qdisc on', t, -created.result, created.messages);
  const opts = optsOf(t, t.programFd, BPF_TC_F_REPLACE);
  const attached = captureLibbpfMessages(() => lib.tcAttach(hook, opts));
  if (attached.result < 0) throw fail('attach a tc program to', t, -attached.result, attached.messages);
  return opts.prog_id;
}

/**
 * The index of interface `name` in the caller's network namespace, undefined if there is none:
 * one ioctl in process (if_nametoindex), where `ip link show` would be a process per call.
 */
export function ifindexOf(name: string): number | undefined {
  if (name.length === 0 || name.length >= IF_NAMESIZE) return undefined;
  const index = libbpf().ifNameToIndex(name);
  return index === 0 ? undefined : index;
}

/** Removes the filter at the target; returns false if there was none. */
export function detachTc(t: TcTarget): boolean {
  check(t);
  const lib = libbpf();
  const { result: r, messages } = captureLibbpfMessages(() => lib.tcDetach(hookOf(t), optsOf(t)));
  if (r === 0) return true;
  // ENOENT: no such filter; EINVAL: no clsact qdisc or no filter chain at all ("Cannot find specified filter chain").
  if (r === -ENOENT || r === -EINVAL) return false;
  throw fail('detach the tc program from', t, -r, messages);
}

/** The id of the program attached at the target, or undefined if there is none. */
export function queryTc(t: TcTarget): number | undefined {
  check(t);
  const lib = libbpf();
  const opts = optsOf(t);
  const { result: r, messages } = captureLibbpfMessages(() => lib.tcQuery(hookOf(t), opts));
  if (r === 0) return opts.prog_id;
  if (r === -ENOENT || r === -EINVAL) return undefined;
  throw fail('query the tc program of', t, -r, messages);
}

/**
 * Removes the interface's clsact qdisc and with it every tc filter in both
 * directions (not only Weft's). Returns false if there was none.
 */
export function destroyTcHook(ifindex: number): boolean {
  const t: TcTarget = { ifindex, direction: 'ingress' };
  check(t);
  const lib = libbpf();
  const hook: TcHook = { ...hookOf(t), attach_point: BPF_TC_INGRESS | BPF_TC_EGRESS };
  const { result: r, messages } = captureLibbpfMessages(() => lib.tcHookDestroy(hook));
  if (r === 0) return true;
  if (r === -ENOENT || r === -EINVAL) return false;
  throw fail('remove the clsact qdisc of', t, -r, messages);
}
