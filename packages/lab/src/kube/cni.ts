/**
 * Pod networking for the lab kubelet, as a container runtime does it with libcni: the node's
 * network configuration is the first valid file, in lexical order, of its /etc/cni/net.d
 * (.conflist, .conf or .json); each plugin of the list is the executable of its `type` in
 * /opt/cni/bin, run with the CNI environment and its own configuration on stdin. ADD runs the
 * plugins in order, each given the result before it (prevResult); DEL runs them in reverse with
 * the result ADD returned. The plugins run in the node's view of the machine (`nodeView`: the
 * node's /opt/cni/bin, /var/run/... copies bound at their paths), as a runtime runs them on the
 * node, so what an init container installed there is what runs.
 *
 * Invariants: a plugin type is a file name, never a path; a plugin's failure is reported with its
 * CNI error code and message; a result must give the pod at least one valid IP address.
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { WeftError } from '@weft/common';
import { runInRoot, type ContainerMount } from './pod-root.js';

export class CniConfigError extends WeftError {
  static readonly code = 'WEFT_ERR_LAB_CNI_CONFIG';
  constructor(message: string) {
    super(CniConfigError.code, message);
  }
}

export class CniPluginError extends WeftError {
  static readonly code = 'WEFT_ERR_LAB_CNI_PLUGIN';
  constructor(message: string) {
    super(CniPluginError.code, message);
  }
}

export const CNI_CONF_DIR = '/etc/cni/net.d';
export const CNI_BIN_DIR = '/opt/cni/bin';
const PLUGIN_TYPE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const PLUGIN_TIMEOUT_MS = 60_000;

export interface NetworkConfig {
  file: string;
  cniVersion: string;
  name: string;
  plugins: Array<Record<string, unknown> & { type: string }>;
}

/** One configuration file's network, or why it is not one. */
export function parseNetworkConfig(file: string, text: string): NetworkConfig {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new CniConfigError(`${file}: not JSON (${(err as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new CniConfigError(`${file}: not a JSON object`);
  const d = doc as Record<string, unknown>;
  const list = file.endsWith('.conflist') ? d.plugins : [d];
  if (!Array.isArray(list) || list.length === 0) throw new CniConfigError(`${file}: "plugins" must be a non-empty list`);
  if (typeof d.name !== 'string' || d.name === '') throw new CniConfigError(`${file}: "name" must be a non-empty string`);
  if (typeof d.cniVersion !== 'string') throw new CniConfigError(`${file}: "cniVersion" must be a string`);
  const plugins = list.map((p: unknown, i) => {
    const type = (p as { type?: unknown } | null)?.type;
    if (typeof type !== 'string' || !PLUGIN_TYPE.test(type)) throw new CniConfigError(`${file}: plugin ${i} has type ${JSON.stringify(type)}; a type is the file name of a plugin in ${CNI_BIN_DIR}`);
    return p as NetworkConfig['plugins'][number];
  });
  return { file, cniVersion: d.cniVersion, name: d.name, plugins };
}

/**
 * The node's network: the first file of `confDir` in lexical order that is a valid configuration.
 * Undefined when there is none yet (kubelet's "network plugin not ready"); `skipped` says why each
 * file before it was passed over.
 */
export function loadNetworkConfig(confDir: string): { config?: NetworkConfig; skipped: string[] } {
  let names: string[];
  try {
    names = readdirSync(confDir).filter((n) => /\.(conflist|conf|json)$/.test(n)).sort();
  } catch {
    return { skipped: [] };
  }
  const skipped: string[] = [];
  for (const name of names) {
    try {
      return { config: parseNetworkConfig(join(confDir, name), readFileSync(join(confDir, name), 'utf8')), skipped };
    } catch (err) {
      if (!(err instanceof CniConfigError)) throw err;
      skipped.push(err.message);
    }
  }
  return { skipped };
}

export interface CniAttachment {
  containerId: string;
  /** The pod's network namespace, by path. */
  netns: string;
  ifname: string;
  podNamespace: string;
  podName: string;
  podUid: string;
}

export interface CniResult {
  ips: Array<{ address: string }>;
  [key: string]: unknown;
}

/** The pod's addresses in a result, without prefix length, each checked. */
export function podIps(result: CniResult, where: string): string[] {
  const ips = (Array.isArray(result.ips) ? result.ips : []).map((x) => String(x?.address ?? '').split('/')[0]!);
  if (ips.length === 0) throw new CniPluginError(`${where}: the result gives the pod no IP address`);
  for (const ip of ips) if (!isIP(ip)) throw new CniPluginError(`${where}: the result gives the pod ${JSON.stringify(ip)}, not an IP address`);
  return ips;
}

export interface NodeCniOptions {
  /** The node's own copy of the machine's paths (its /etc/cni/net.d is read from here). */
  nodeRoot: string;
  /** The node's paths as bind mounts (its /opt/cni/bin, /var/run/...), for the plugin's root. */
  nodeView: () => ContainerMount[];
  /** A scratch directory for the plugins' roots. */
  dir: string;
}

export class NodeCni {
  constructor(private readonly o: NodeCniOptions) {}

  /** The node's network (undefined while none is installed), and why files before it were passed over. */
  config(): { config?: NetworkConfig; skipped: string[] } {
    return loadNetworkConfig(join(this.o.nodeRoot, CNI_CONF_DIR));
  }

  async add(net: NetworkConfig, a: CniAttachment): Promise<CniResult> {
    let prev: CniResult | undefined;
    for (const plugin of net.plugins) prev = await this.exec('ADD', net, plugin, a, prev);
    return prev!;
  }

  /** Every plugin in reverse, each given ADD's result; the first failure is reported after all have run. */
  async del(net: NetworkConfig, a: CniAttachment, prevResult: CniResult | undefined): Promise<void> {
    let first: unknown;
    for (const plugin of [...net.plugins].reverse()) {
      await this.exec('DEL', net, plugin, a, prevResult).catch((err: unknown) => (first ??= err));
    }
    if (first) throw first;
  }

  private async exec(command: 'ADD' | 'DEL', net: NetworkConfig, plugin: NetworkConfig['plugins'][number], a: CniAttachment, prevResult: CniResult | undefined): Promise<CniResult> {
    const where = `CNI ${command} of pod ${a.podNamespace}/${a.podName} by plugin ${plugin.type} (${net.file})`;
    const stdin = JSON.stringify({ ...plugin, cniVersion: net.cniVersion, name: net.name, ...(prevResult ? { prevResult } : {}) });
    const env = {
      PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
      CNI_COMMAND: command,
      CNI_CONTAINERID: a.containerId,
      CNI_NETNS: a.netns,
      CNI_IFNAME: a.ifname,
      CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${a.podNamespace};K8S_POD_NAME=${a.podName};K8S_POD_INFRA_CONTAINER_ID=${a.containerId};K8S_POD_UID=${a.podUid}`,
      CNI_PATH: CNI_BIN_DIR,
    };
    const dir = join(this.o.dir, `${a.containerId.slice(0, 12)}-${command.toLowerCase()}-${plugin.type}`);
    try {
      const r = await runInRoot({ dir, argv: [join(CNI_BIN_DIR, plugin.type)], env, mounts: this.o.nodeView(), input: stdin, timeoutMs: PLUGIN_TIMEOUT_MS });
      if (r.code !== 0) {
        const e = parseError(r.stdout);
        throw new CniPluginError(e ? `${where} failed: ${e.msg} (CNI error ${e.code})${e.details ? `: ${e.details}` : ''}` : `${where} failed with exit code ${r.code}: ${(r.stdout + r.stderr).trim().slice(0, 500) || 'no output'}`);
      }
      if (command === 'DEL') return prevResult ?? { ips: [] };
      let result: CniResult;
      try {
        result = JSON.parse(r.stdout) as CniResult;
      } catch {
        throw new CniPluginError(`${where}: the plugin printed no JSON result: ${r.stdout.trim().slice(0, 500)}`);
      }
      podIps(result, where);
      return result;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

function parseError(stdout: string): { code: number; msg: string; details?: string } | undefined {
  try {
    const e = JSON.parse(stdout) as { code?: unknown; msg?: unknown; details?: unknown };
    if (typeof e.code === 'number' && typeof e.msg === 'string') return { code: e.code, msg: e.msg, ...(typeof e.details === 'string' ? { details: e.details } : {}) };
  } catch {
    // Not the spec's error JSON: the caller reports the output as it is.
  }
  return undefined;
}
