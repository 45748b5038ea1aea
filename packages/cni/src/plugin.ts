/**
 * The Weft CNI plugin (CNI spec 1.0.0): ADD, DEL, CHECK, VERSION. It does no
 * networking itself; it validates the request and asks the node's agent over
 * its unix socket, then prints the spec's result or error JSON. Pure function
 * of (environment, stdin) -> (stdout, exit code), so it is tested without root.
 */
// The client module and the argument rules alone: kubelet execs the plugin for every pod, and
// loading the whole agent (etcd, gRPC) would add over 100 ms to each pod start.
import { AGENT_STARTING } from '@weft/agent/api';
import { AgentApiError, AgentClient, AgentUnreachableError } from '@weft/agent/api-client';
import { CNI_ERROR, cniArgsProblem, isCniCommand, networkNameProblem, parseCniArgs, quote, socketPathProblem, type CniArgs } from '@weft/agent/cni-args';

export const SUPPORTED_VERSIONS = ['0.4.0', '1.0.0'];

/** CNI spec error codes. */
export const CniError = CNI_ERROR;

/** Larger than any network configuration a runtime sends; more is refused. */
export const MAX_STDIN_BYTES = 1 << 20;

export interface PluginOutput {
  stdout: string;
  exitCode: number;
}

function error(cniVersion: string, code: number, msg: string, details?: string): PluginOutput {
  return { stdout: JSON.stringify({ cniVersion, code, msg, ...(details ? { details } : {}) }) + '\n', exitCode: 1 };
}

export async function runPlugin(env: NodeJS.ProcessEnv, stdin: string): Promise<PluginOutput> {
  const command = env.CNI_COMMAND;
  if (command === 'VERSION') return { stdout: JSON.stringify({ cniVersion: '1.0.0', supportedVersions: SUPPORTED_VERSIONS }) + '\n', exitCode: 0 };
  if (Buffer.byteLength(stdin) > MAX_STDIN_BYTES) return error('1.0.0', CniError.invalidNetworkConfig, `Invalid network configuration: stdin is larger than ${MAX_STDIN_BYTES} bytes`);
  let conf: { cniVersion?: unknown; name?: unknown; agentSocket?: unknown };
  try {
    conf = JSON.parse(stdin) as typeof conf;
  } catch (err) {
    return error('1.0.0', CniError.decodingFailure, 'Cannot decode the network configuration on stdin', (err as Error).message);
  }
  if (typeof conf !== 'object' || conf === null || Array.isArray(conf)) return error('1.0.0', CniError.decodingFailure, 'Cannot decode the network configuration on stdin: it is not a JSON object');
  const version = typeof conf.cniVersion === 'string' ? conf.cniVersion : '';
  if (!SUPPORTED_VERSIONS.includes(version)) return error('1.0.0', CniError.incompatibleVersion, `Unsupported cniVersion ${JSON.stringify(conf.cniVersion)}`, `supported: ${SUPPORTED_VERSIONS.join(', ')}`);
  const nameProblem = networkNameProblem(conf.name);
  if (nameProblem) return error(version, CniError.invalidNetworkConfig, `Invalid network configuration: name ${quote(conf.name)} ${nameProblem}`);
  const socketProblem = socketPathProblem(conf.agentSocket);
  if (socketProblem) return error(version, CniError.invalidNetworkConfig, `Invalid network configuration: agentSocket ${quote(conf.agentSocket)} ${socketProblem}`);
  if (!isCniCommand(command)) return error(version, CniError.invalidEnvironment, `Invalid CNI_COMMAND ${quote(command)}: must be ADD, DEL, CHECK or VERSION`);
  const parsed = parseCniArgs(env.CNI_ARGS ?? '');
  if ('problem' in parsed) return error(version, parsed.problem.code, parsed.problem.message);
  const pairs = parsed.pairs;
  const args: CniArgs = { containerId: env.CNI_CONTAINERID ?? '', netnsPath: env.CNI_NETNS ?? '', ifname: env.CNI_IFNAME ?? '', namespace: pairs.K8S_POD_NAMESPACE ?? '', pod: pairs.K8S_POD_NAME ?? '' };
  const problem = cniArgsProblem(command, args);
  if (problem) return error(version, problem.code, problem.message);
  const client = new AgentClient(conf.agentSocket as string);
  try {
    if (command !== 'ADD') {
      await client.cni(command, args);
      return { stdout: '', exitCode: 0 };
    }
    const r = await client.cni('ADD', args);
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
