/**
 * `weft observe ... --context C`: the same command run inside the chart's relay pod, against its
 * socket (as `kubectl exec deploy/weft-relay -- weft observe --server unix:///var/run/weft-relay/relay.sock`):
 * the relay already reaches every node over mutual TLS, and no certificate leaves the cluster.
 */
import { KubeClient } from '@weft/kubernetes';
import { UsageError } from '../output.js';

/** The flags this path takes for itself (with a value each); everything else goes to the pod's `weft observe`. */
const KUBE_FLAGS = ['context', 'kubeconfig', 'release', 'weft-namespace'] as const;
export const RELAY_SOCKET = 'unix:///var/run/weft-relay/relay.sock';

export function kubeTarget(argv: readonly string[]): { context: string; kubeconfig?: string; release: string; namespace: string; rest: string[] } | undefined {
  const values: Partial<Record<(typeof KUBE_FLAGS)[number], string>> = {};
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/s.exec(argv[i]!);
    const flag = m?.[1] as (typeof KUBE_FLAGS)[number] | undefined;
    if (!flag || !(KUBE_FLAGS as readonly string[]).includes(flag)) {
      rest.push(argv[i]!);
      continue;
    }
    const value = m![2] ?? argv[++i];
    if (value === undefined || value === '') throw new UsageError(`--${flag} needs a value`);
    values[flag] = value;
  }
  if (values.context === undefined) {
    const stray = KUBE_FLAGS.find((f) => values[f] !== undefined);
    if (stray) throw new UsageError(`--${stray} goes with --context (a cluster running the chart)`);
    return undefined;
  }
  if (rest.some((a) => a === '--server' || a.startsWith('--server=') || a === '--cluster' || a.startsWith('--cluster='))) throw new UsageError('--context asks the chart\'s relay: it does not go with --server or --cluster');
  return { context: values.context, ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}), release: values.release ?? 'weft', namespace: values['weft-namespace'] ?? 'kube-system', rest };
}

/** Runs `weft observe <args>` in a running relay pod of the release; exits with its exit code. */
export async function observeInCluster(target: NonNullable<ReturnType<typeof kubeTarget>>, args: string[]): Promise<void> {
  const kube = await KubeClient.create({ context: target.context, ...(target.kubeconfig ? { kubeconfig: target.kubeconfig } : {}) });
  const selector = `app.kubernetes.io/name=weft,app.kubernetes.io/instance=${target.release},app.kubernetes.io/component=relay`;
  const list = await kube.request<{ items: Array<{ metadata: { name: string }; status?: { phase?: string } }> }>('list the relay pods', 'GET', `/api/v1/namespaces/${encodeURIComponent(target.namespace)}/pods`, { query: { labelSelector: selector } });
  const pod = list.items.find((p) => p.status?.phase === 'Running');
  if (!pod) throw new UsageError(`No running relay in namespace ${target.namespace} of context ${target.context} (pods labelled ${selector}): is the chart installed there with observer.relay.enabled, or under another --release/--weft-namespace?`);
  const code = await kube.exec(target.namespace, pod.metadata.name, 'relay', ['weft', 'observe', ...args, '--server', RELAY_SOCKET], process.stdout, process.stderr);
  process.exitCode = code;
}
