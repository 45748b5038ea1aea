/**
 * The Weft CNI plugin (CNI spec 1.0.0): ADD, DEL, CHECK, VERSION. It does no
 * networking itself; it validates the request and asks the node's agent over
 * its unix socket, then prints the spec's result or error JSON. Pure function
 * of (environment, stdin) -> (stdout, exit code), so it is tested without root.
 */
// The client module alone: kubelet execs the plugin for every pod, and loading the whole
// agent (etcd, gRPC) would add over 100 ms to each pod start.
import { AGENT_STARTING, AgentApiError, AgentClient, AgentUnreachableError } from '@weft/agent/dist/api.js';

export const SUPPORTED_VERSIONS = ['0.4.0', '1.0.0'];

/** CNI spec error codes. */
export const CniError = {
  incompatibleVersion: 1,
  unsupportedField: 2,
  unknownContainer: 3,
  invalidEnvironment: 4,
  ioFailure: 5,
  decodingFailure: 6,
  invalidNetworkConfig: 7,
  tryAgainLater: 11,
} as const;

export interface PluginOutput {
  stdout: string;
  exitCode: number;
}

function error(cniVersion: string, code: number, msg: string, details?: string): PluginOutput {
  return { stdout: JSON.stringify({ cniVersion, code, msg, ...(details ? { details } : {}) }) + '\n', exitCode: 1 };
}

function parseCniArgs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(';')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    if (eq > 0) out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

export async function runPlugin(env: NodeJS.ProcessEnv, stdin: string): Promise<PluginOutput> {
  const command = env.CNI_COMMAND;
  if (command === 'VERSION') return { stdout: JSON.stringify({ cniVersion: '1.0.0', supportedVersions: SUPPORTED_VERSIONS }) + '\n', exitCode: 0 };
  let conf: { cniVersion?: unknown; name?: unknown; agentSocket?: unknown };
  try {
    conf = JSON.parse(stdin) as typeof conf;
  } catch (err) {
    return error('1.0.0', CniError.decodingFailure, 'Cannot decode the network configuration on stdin', (err as Error).message);
  }
  const version = typeof conf.cniVersion === 'string' ? conf.cniVersion : '';
  if (!SUPPORTED_VERSIONS.includes(version)) return error('1.0.0', CniError.incompatibleVersion, `Unsupported cniVersion ${JSON.stringify(conf.cniVersion)}`, `supported: ${SUPPORTED_VERSIONS.join(', ')}`);
  if (typeof conf.agentSocket !== 'string' || conf.agentSocket === '') return error(version, CniError.invalidNetworkConfig, 'The network configuration has no agentSocket (path of the Weft agent socket)');
  if (command !== 'ADD' && command !== 'DEL' && command !== 'CHECK') return error(version, CniError.invalidEnvironment, `Unknown CNI_COMMAND ${JSON.stringify(command ?? '')}`);
  const missing = ['CNI_CONTAINERID', ...(command === 'DEL' ? [] : ['CNI_NETNS']), 'CNI_IFNAME'].filter((k) => !env[k]);
  if (missing.length > 0) return error(version, CniError.invalidEnvironment, `Missing environment variables: ${missing.join(', ')}`);
  const cniArgs = parseCniArgs(env.CNI_ARGS ?? '');
  const namespace = cniArgs.K8S_POD_NAMESPACE;
  const pod = cniArgs.K8S_POD_NAME;
  if (command === 'ADD' && (!namespace || !pod)) return error(version, CniError.invalidEnvironment, 'CNI_ARGS must carry K8S_POD_NAMESPACE and K8S_POD_NAME');
  const client = new AgentClient(conf.agentSocket);
  const args = { containerId: env.CNI_CONTAINERID!, netnsPath: env.CNI_NETNS ?? '', ifname: env.CNI_IFNAME!, namespace: namespace ?? '', pod: pod ?? '' };
  try {
    const r = await client.call<{ ip: string; gateway: string; hostIf: string; podIf: string; mac: string }>('POST', '/v1/cni', { command, args });
    if (command !== 'ADD') return { stdout: '', exitCode: 0 };
    const result = {
      cniVersion: version,
      interfaces: [{ name: r.hostIf }, { name: r.podIf, mac: r.mac, sandbox: args.netnsPath }],
      ips: [{ address: `${r.ip}/32`, gateway: r.gateway, interface: 1 }],
      routes: [{ dst: '0.0.0.0/0', gw: r.gateway }],
      dns: {},
    };
    return { stdout: JSON.stringify(result) + '\n', exitCode: 0 };
  } catch (err) {
    // An agent still starting has not restored its endpoints yet: as if it were not running.
    if (err instanceof AgentUnreachableError || (err instanceof AgentApiError && err.code === AGENT_STARTING)) {
      // A DEL for a node whose agent is gone must not wedge pod teardown.
      if (command === 'DEL') return { stdout: '', exitCode: 0 };
      return error(version, CniError.tryAgainLater, err.message);
    }
    if (err instanceof AgentApiError) return error(version, err.cniCode ?? 100, err.message, err.code);
    return error(version, CniError.ioFailure, (err as Error).message);
  }
}
