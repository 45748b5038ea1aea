/**
 * A WireGuard device for a name: kernel WireGuard where the kernel has it,
 * wireguard-go otherwise, or the one implementation asked for.
 *
 * - 'auto' keeps a device that already runs under the name (kernel device or
 *   wireguard-go answering on its socket: a restarted agent keeps its
 *   sessions), else creates a kernel device, and falls back to wireguard-go
 *   when the kernel answers that it has no such device type.
 * - 'kernel' and 'userspace' insist: a device of the other implementation
 *   under the name is deleted first (the configuration changed; the caller
 *   configures the new one from scratch), and 'kernel' on a kernel without
 *   WireGuard is a KernelWireGuardUnavailableError.
 * A device of another kind under the name (a dummy, a veth) is never touched:
 * that is an error.
 */
import { KernelWireGuardUnavailableError, NetCommandError, WireGuardError } from './errors.js';
import { commandRunner, KernelWireGuard, type CommandRunner } from './kernel-wireguard.js';
import { checkDeviceName, ensureWireGuardGo, WireGuardUapi, type WireGuardDevice, type WireGuardImplementation } from './wireguard.js';

export type WireGuardImplementationChoice = 'auto' | WireGuardImplementation;

export interface EnsureWireGuardOptions {
  /** Default 'auto'. */
  implementation?: WireGuardImplementationChoice;
  /** The network namespace the device lives in (default: the caller's). */
  netns?: string;
  /** Test seams: the command runner and wireguard-go's start. */
  exec?: CommandRunner;
  userspace?: (ifname: string, netns: string | undefined) => Promise<WireGuardDevice>;
}

/** What `ip link add ... type wireguard` answers on a kernel without the module. */
const NO_KERNEL_WIREGUARD = /Unknown device type|Operation not supported|not supported/i;

export async function ensureWireGuard(ifname: string, options: EnsureWireGuardOptions = {}): Promise<WireGuardDevice> {
  checkDeviceName(ifname);
  const want = options.implementation ?? 'auto';
  if (want !== 'auto' && want !== 'kernel' && want !== 'userspace') throw new WireGuardError(`Invalid WireGuard implementation ${JSON.stringify(want)}: auto, kernel or userspace`);
  const exec = options.exec ?? commandRunner(options.netns);
  const userspace = options.userspace ?? ((name, netns) => ensureWireGuardGo(name, netns === undefined ? {} : { netns }));
  const kernel = new KernelWireGuard(ifname, { exec });
  const uapi = new WireGuardUapi(ifname);

  const kind = await linkKind(exec, ifname);
  if (kind === 'wireguard') {
    if (want !== 'userspace') return kernel;
    await deleteLink(exec, ifname);
  } else if (kind !== undefined) {
    const goRuns = kind === 'tun' && (await uapi.alive());
    if (!goRuns) throw new WireGuardError(`Cannot set up WireGuard device ${ifname}: a ${kind} device of that name exists and is not WireGuard; delete it (ip link del ${ifname}) or pick another name`);
    if (want !== 'kernel') return userspace(ifname, options.netns);
    // Deleting its TUN device ends wireguard-go (it exits and removes its socket).
    await deleteLink(exec, ifname);
  }
  if (want === 'userspace') return userspace(ifname, options.netns);

  try {
    await exec(['ip', 'link', 'add', ifname, 'type', 'wireguard']);
    return kernel;
  } catch (err) {
    const stderr = err instanceof NetCommandError ? err.stderr.trim() : (err as Error).message;
    if (!NO_KERNEL_WIREGUARD.test(stderr)) throw new WireGuardError(`Cannot create kernel WireGuard device ${ifname}: ${stderr || 'no reason given'}`);
    if (want === 'kernel') throw new KernelWireGuardUnavailableError(`Cannot create kernel WireGuard device ${ifname}: this kernel has no WireGuard (ip link add answered "${stderr}"); load the wireguard module, or set wireguardImplementation to auto or userspace (wireguard-go)`);
  }
  return userspace(ifname, options.netns);
}

/** The link's kind (`ip -d link`'s info_kind; '' for a plain device), or undefined if there is none. */
async function linkKind(exec: CommandRunner, ifname: string): Promise<string | undefined> {
  let out: string;
  try {
    out = await exec(['ip', '-d', '-j', 'link', 'show', 'dev', ifname]);
  } catch (err) {
    if (err instanceof NetCommandError && /does not exist|Cannot find device/.test(err.stderr)) return undefined;
    throw err;
  }
  const [link] = JSON.parse(out) as Array<{ linkinfo?: { info_kind?: string } }>;
  return link === undefined ? undefined : (link.linkinfo?.info_kind ?? '');
}

async function deleteLink(exec: CommandRunner, ifname: string): Promise<void> {
  await exec(['ip', 'link', 'del', ifname]);
}
