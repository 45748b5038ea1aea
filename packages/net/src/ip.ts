/**
 * Links, addresses, routes and namespaces through iproute2 (`ip -j` for
 * reads). One `Ip` instance targets one network namespace (or the caller's),
 * so the lab can configure every node from outside and an agent its own.
 * Deletions of things already gone succeed: every cleanup path is idempotent.
 * Every argument and namespace name is checked (args.ts) before a process
 * starts: `ip` runs as root, and `ip -batch` reads its commands as text.
 */
import { checkIpArgs, checkNetnsName } from './args.js';
import { NetCommandError } from './errors.js';
import { run } from './run.js';

export interface LinkInfo {
  ifindex: number;
  ifname: string;
  mtu: number;
  address: string;
  operstate: string;
  flags: string[];
}

const GONE = /Cannot find device|does not exist|No such file or directory|No such process|Cannot open network namespace/;

export class Ip {
  constructor(readonly netns?: string) {}

  /** `ip [-n NETNS] ARGS...` */
  async run(args: string[]): Promise<string> {
    if (this.netns !== undefined) checkNetnsName(this.netns, 'ip -n');
    checkIpArgs(args);
    const cmd = this.netns !== undefined ? ['ip', '-n', this.netns, ...args] : ['ip', ...args];
    return (await run(cmd)).stdout;
  }

  /** Like run(), but a target that does not exist is not an error. */
  async runIdempotent(args: string[]): Promise<void> {
    try {
      await this.run(args);
    } catch (err) {
      if (err instanceof NetCommandError && GONE.test(err.stderr)) return;
      throw err;
    }
  }

  async link(name: string): Promise<LinkInfo | undefined> {
    try {
      const out = JSON.parse(await this.run(['-j', 'link', 'show', 'dev', name])) as LinkInfo[];
      return out[0];
    } catch (err) {
      if (err instanceof NetCommandError && GONE.test(err.stderr)) return undefined;
      throw err;
    }
  }

  /** Runs many `ip` commands in one process (`ip -batch -`), stopping at the first failure. */
  async batch(commands: string[][]): Promise<void> {
    if (this.netns !== undefined) checkNetnsName(this.netns, 'ip -n');
    // Every line whole before anything runs: a refused line must not leave the ones before it applied.
    commands.forEach((c, i) => checkIpArgs(c, `ip -batch line ${i + 1}`));
    const cmd = this.netns !== undefined ? ['ip', '-n', this.netns, '-batch', '-'] : ['ip', '-batch', '-'];
    await run(cmd, { input: commands.map((c) => c.join(' ')).join('\n') + '\n' });
  }

  async links(): Promise<LinkInfo[]> {
    return JSON.parse(await this.run(['-j', 'link', 'show'])) as LinkInfo[];
  }

  /** A veth pair: `host` here, `peer` moved into `peerNetns` (a name) when given. */
  async addVeth(host: string, peer: string, options: { peerNetns?: string; mtu?: number } = {}): Promise<void> {
    const args = ['link', 'add', host];
    if (options.mtu) args.push('mtu', String(options.mtu));
    args.push('type', 'veth', 'peer', 'name', peer);
    if (options.mtu) args.push('mtu', String(options.mtu));
    if (options.peerNetns) args.push('netns', options.peerNetns);
    await this.run(args);
  }

  async setUp(dev: string): Promise<void> {
    await this.run(['link', 'set', 'dev', dev, 'up']);
  }

  async setMtu(dev: string, mtu: number): Promise<void> {
    await this.run(['link', 'set', 'dev', dev, 'mtu', String(mtu)]);
  }

  async setMaster(dev: string, master: string): Promise<void> {
    await this.run(['link', 'set', 'dev', dev, 'master', master]);
  }

  /** The interface holding IPv4 address `ip` (any prefix length), or undefined if none here does. */
  async deviceWithAddress(ip: string): Promise<LinkInfo | undefined> {
    const out = JSON.parse(await this.run(['-j', '-4', 'addr', 'show'])) as Array<LinkInfo & { addr_info?: Array<{ local?: string }> }>;
    return out.find((l) => (l.addr_info ?? []).some((a) => a.local === ip));
  }

  async addAddress(dev: string, cidr: string): Promise<void> {
    await this.run(['addr', 'replace', cidr, 'dev', dev]);
  }

  async replaceRoute(args: string[]): Promise<void> {
    await this.run(['route', 'replace', ...args]);
  }

  async deleteRoute(args: string[]): Promise<void> {
    await this.runIdempotent(['route', 'del', ...args]);
  }

  async deleteLink(name: string): Promise<void> {
    await this.runIdempotent(['link', 'del', 'dev', name]);
  }

  async addBridge(name: string): Promise<void> {
    await this.run(['link', 'add', name, 'type', 'bridge']);
  }

  /** A collect-metadata (external) VXLAN device: the datapath sets each packet's tunnel key. */
  async addVxlanExternal(name: string, options: { dstport: number; mtu?: number }): Promise<void> {
    const args = ['link', 'add', name];
    if (options.mtu) args.push('mtu', String(options.mtu));
    args.push('type', 'vxlan', 'external', 'dstport', String(options.dstport));
    await this.run(args);
  }
}

/** Network namespaces (named, under /var/run/netns). */
export const netns = {
  async add(name: string): Promise<void> {
    checkNetnsName(name, 'ip netns add');
    await run(['ip', 'netns', 'add', name]);
    await new Ip(name).setUp('lo');
  },
  async delete(name: string): Promise<void> {
    checkNetnsName(name, 'ip netns del');
    await run(['ip', 'netns', 'del', name], { allowFail: true });
  },
  async list(): Promise<string[]> {
    const { stdout } = await run(['ip', '-j', 'netns', 'list'], { allowFail: true });
    if (!stdout.trim()) return [];
    return (JSON.parse(stdout) as Array<{ name: string }>).map((n) => n.name);
  },
  /** Runs a command inside the namespace (its argv goes to execve as given: no shell, no batch text). */
  async exec(name: string, command: string[], options: { input?: string; allowFail?: boolean } = {}): Promise<{ stdout: string; stderr: string }> {
    checkNetnsName(name, 'ip netns exec');
    return run(['ip', 'netns', 'exec', name, ...command], options);
  },
  /** Sets a sysctl inside the namespace (per-namespace knobs such as ip_forward). */
  async sysctl(name: string, key: string, value: string): Promise<void> {
    checkNetnsName(name, 'ip netns exec');
    checkIpArgs([key, value], 'sysctl');
    await run(['ip', 'netns', 'exec', name, 'sysctl', '-q', '-w', `${key}=${value}`]);
  },
};
