/** `weft agent --config FILE`: runs a node agent in the current network namespace until signalled. */
import { createLogger } from '@weft/common';
import { Agent, ensureEtcdCredential, loadAgentConfig } from '@weft/agent';
import { BpfDatapath } from '@weft/agent/bpf-datapath';
import { PodRuntime } from '@weft/lab';
import { COMMANDS } from '../command-table.js';
import { UsageError } from '../output.js';
import { parseCommandArgs } from '../parse-command-args.js';

export async function agent(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS.agent, argv);
  if (!values.config) throw new UsageError('weft agent needs --config FILE (see weft agent --help)');
  const config = loadAgentConfig(values.config);
  const log = createLogger({ component: 'agent', cluster: config.cluster, node: config.node });
  // Kubernetes mode: this node's own etcd certificate first (etcdIssuer), then everything else.
  await ensureEtcdCredential(config, log.child({ component: 'etcd-credential' }));
  const a = new Agent(config, new BpfDatapath(config, log.child({ component: 'datapath' })), log);
  // The lab's stand-in for kubelet, beside the agent (standalone mode only: config validation refuses it with kubernetes).
  let pods: PodRuntime | undefined;
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    (async () => {
      await pods?.stop();
      await a.stop();
    })().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  await a.start();
  if (config.podRuntime && !stopping) {
    pods = new PodRuntime(config, a.resources, a.socketPath, log.child({ component: 'pod-runtime' }));
    await pods.start();
  }
  await new Promise(() => undefined);
}
