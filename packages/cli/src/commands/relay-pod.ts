/**
 * `--context C` of `weft observe` and `weft policy suggest`: the same command run inside the chart's
 * relay pod, against its socket (as `kubectl exec deploy/weft-relay -- weft observe --server
 * unix:///var/run/weft-relay/relay.sock`): the relay already reaches every node over mutual TLS, and
 * no certificate leaves the cluster.
 */
import { KubeClient } from '@weft/kubernetes';
import { UsageError } from '../output.js';

/** The flags this path takes for itself (with a value each); everything else goes to the pod's `weft observe`. */
const KUBE_FLAGS = ['context', 'kubeconfig', 'release', 'weft-namespace'] as const;
export const RELAY_SOCKET = 'unix:///var/run/weft-relay/relay.sock';

export interface KubeTarget {
  context: string;
  kubeconfig?: string;
  release: string;
  namespace: string;
  /** The arguments for the command in the pod. */
  rest: string[];
}

export function kubeTarget(argv: readonly string[]): KubeTarget | undefined {
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

interface RelayPod {
  kube: KubeClient;
  name: string;
  /** Its configuration's ConfigMap (the pod's `config` volume): the relay's cluster is in it. */
  configMap: string | undefined;
}

async function relayPod(target: KubeTarget): Promise<RelayPod> {
  const kube = await KubeClient.create({ context: target.context, ...(target.kubeconfig ? { kubeconfig: target.kubeconfig } : {}) });
  const selector = `app.kubernetes.io/name=weft,app.kubernetes.io/instance=${target.release},app.kubernetes.io/component=relay`;
  type Pod = { metadata: { name: string }; spec?: { volumes?: Array<{ name: string; configMap?: { name: string } }> }; status?: { phase?: string } };
  const list = await kube.request<{ items: Pod[] }>('list the relay pods', 'GET', `/api/v1/namespaces/${encodeURIComponent(target.namespace)}/pods`, { query: { labelSelector: selector } });
  const pod = list.items.find((p) => p.status?.phase === 'Running');
  if (!pod) throw new UsageError(`No running relay in namespace ${target.namespace} of context ${target.context} (pods labelled ${selector}): is the chart installed there with observer.relay.enabled, or under another --release/--weft-namespace?`);
  return { kube, name: pod.metadata.name, configMap: pod.spec?.volumes?.find((v) => v.name === 'config')?.configMap?.name };
}

/** Runs `weft <command>` in a running relay pod of the release; exits with its exit code. */
async function execInRelay(target: KubeTarget, pod: RelayPod, command: string[]): Promise<void> {
  process.exitCode = await pod.kube.exec(target.namespace, pod.name, 'relay', ['weft', ...command, '--server', RELAY_SOCKET], process.stdout, process.stderr);
}

/** `weft observe [status|nodes] <args>` in the relay pod. */
export async function observeInCluster(target: KubeTarget, args: string[]): Promise<void> {
  await execInRelay(target, await relayPod(target), ['observe', ...args]);
}

/**
 * `weft policy suggest <args>` in the relay pod, for the relay's own cluster (its configuration
 * names it): a connected cluster's flows pass through that relay too.
 */
export async function policySuggestInCluster(target: KubeTarget, args: string[]): Promise<void> {
  const pod = await relayPod(target);
  if (!pod.configMap) throw new UsageError(`The relay pod ${target.namespace}/${pod.name} has no configuration volume: is it the chart's relay?`);
  const cm = await pod.kube.request<{ data?: Record<string, string> }>('read the relay configuration', 'GET', `/api/v1/namespaces/${encodeURIComponent(target.namespace)}/configmaps/${encodeURIComponent(pod.configMap)}`);
  let cluster: unknown;
  try {
    cluster = (JSON.parse(cm.data?.['relay.json'] ?? '') as { cluster?: unknown }).cluster;
  } catch {
    cluster = undefined;
  }
  if (typeof cluster !== 'string' || cluster === '') throw new UsageError(`ConfigMap ${target.namespace}/${pod.configMap} names no cluster in relay.json: is it the chart's relay configuration?`);
  await execInRelay(target, pod, ['policy', 'suggest', ...args, '--cluster', cluster]);
}
