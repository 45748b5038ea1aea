/**
 * `weft uninstall-cleanup --cluster NAME [--namespace NS] [--release R] [--context C] [--timeout S]`:
 * the chart's post-delete hook. Once no agent or clustermesh-apiserver of the release is left, it
 * deletes the cluster's WeftNodes and WeftIdentities, which helm does not own
 * (@weft/kubernetes uninstall-cleanup.ts). In a pod it uses the pod's ServiceAccount; with
 * --context, a kubeconfig, for running it by hand.
 */
import { KubeClient, uninstallCleanup } from '@weft/kubernetes';
import { COMMANDS } from '../command-table.js';
import { parseFormat, printJson, progress, UsageError } from '../output.js';
import { parseCommandArgs } from '../parse-command-args.js';

const SEE = '(see weft uninstall-cleanup --help)';

export async function uninstallCleanupCommand(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS['uninstall-cleanup'], argv);
  const format = parseFormat(values.output);
  if (!values.cluster) throw new UsageError(`weft uninstall-cleanup needs --cluster ${SEE}`);
  const timeout = Number(values.timeout);
  if (!Number.isFinite(timeout) || timeout <= 0) throw new UsageError(`Invalid --timeout ${JSON.stringify(values.timeout)}: use a number of seconds > 0 ${SEE}`);
  const client = await KubeClient.create(values.context !== undefined ? { context: values.context } : {});
  const r = await uninstallCleanup(client, {
    cluster: values.cluster,
    ...(values.namespace !== undefined ? { namespace: values.namespace } : {}),
    ...(values.release !== undefined ? { release: values.release } : {}),
    timeoutMs: timeout * 1000,
    progress,
  });
  if (format === 'json') return printJson(r);
  process.stdout.write(`cluster ${r.cluster}: deleted WeftNodes ${r.weftNodes.join(', ') || '(none)'}; WeftIdentities ${r.weftIdentities.join(', ') || '(none)'}\n`);
}
