/**
 * `weft agent health [--socket PATH] [--liveness] [-o json]` and
 * `weft clustermesh-apiserver health --config FILE [--liveness] [-o json]`: the Kubernetes probes
 * of the chart's agent DaemonSet and clustermesh-apiserver Deployment, and an operator's first
 * question. Exit 0 when ready; 1 when not ready (the failing checks, WEFT_ERR_NOT_READY) or when
 * nothing answers within 5 s (WEFT_ERR_AGENT_UNREACHABLE, WEFT_ERR_MESH_UNREACHABLE); 2 on usage
 * errors. With --liveness an answer is enough: the process is alive, and restarting it would not
 * bring etcd back (a liveness probe that required etcd would restart every agent of the cluster
 * during an etcd outage).
 */
import { WeftError, type HealthReport } from '@weft/common';
// Single modules, not the packages' indexes: a probe runs every few seconds on every node, and
// loading all of the agent or the clustermesh (etcd, Kubernetes clients) would cost far more CPU.
import { AgentClient, AgentUnreachableError } from '@weft/agent/api-client';
import { loadMeshConfig } from '@weft/clustermesh/config';
import { localAddress, probeApiServer } from '@weft/clustermesh/health';
import { COMMANDS } from '../command-table.js';
import { parseFormat, printJson, printTable, UsageError, type OutputFormat } from '../output.js';
import { parseCommandArgs } from '../parse-command-args.js';

const TIMEOUT_MS = 5000;

/** The process answered, and some of its checks failed; the message lists them. */
export class NotReadyError extends WeftError {
  static readonly code = 'WEFT_ERR_NOT_READY';
  constructor(what: string, report: HealthReport) {
    const failing = report.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
    super(NotReadyError.code, `${what} is not ready: ${failing.join('; ')}`);
  }
}

/** The clustermesh-apiserver did not answer its health call (not running, not listening, refused our TLS, too slow). */
export class MeshUnreachableError extends WeftError {
  static readonly code = 'WEFT_ERR_MESH_UNREACHABLE';
  constructor(address: string, problem: string, options?: { cause?: unknown }) {
    super(MeshUnreachableError.code, `Cannot reach the clustermesh-apiserver at ${address}: ${problem}`, options);
  }
}

export async function agentHealth(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS['agent health'], argv);
  const format = parseFormat(values.output);
  const signal = AbortSignal.timeout(TIMEOUT_MS);
  let report: HealthReport;
  try {
    report = await new AgentClient(values.socket).health(signal);
  } catch (err) {
    if (err instanceof AgentUnreachableError && signal.aborted) throw new AgentUnreachableError(values.socket, new Error(`no answer within ${TIMEOUT_MS / 1000}s`));
    throw err;
  }
  conclude(`The agent at ${values.socket}`, report, format, values.liveness === true);
}

export async function apiserverHealth(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS['clustermesh-apiserver health'], argv);
  if (!values.config) throw new UsageError('weft clustermesh-apiserver health needs --config FILE (see weft clustermesh-apiserver health --help)');
  const format = parseFormat(values.output);
  const config = loadMeshConfig(values.config);
  const address = localAddress(config.listen);
  let report: HealthReport;
  try {
    report = await probeApiServer(config, TIMEOUT_MS);
  } catch (err) {
    throw new MeshUnreachableError(address, (err as { details?: string }).details || (err as Error).message, { cause: err });
  }
  conclude(`The clustermesh-apiserver at ${address}`, report, format, values.liveness === true);
}

/** Prints the checks; throws NotReadyError (exit 1) unless ready or only liveness was asked. */
function conclude(what: string, report: HealthReport, format: OutputFormat, liveness: boolean): void {
  if (format === 'json') printJson(report);
  else printTable(['CHECK', 'OK', 'DETAIL'], report.checks.map((c) => [c.name, c.ok ? 'yes' : 'NO', c.detail]));
  if (!report.ready && !liveness) throw new NotReadyError(what, report);
}
