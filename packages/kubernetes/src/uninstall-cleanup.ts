/**
 * What `helm uninstall` cannot remove: the cluster's WeftNodes and WeftIdentities. They are copies
 * of the kvstore's records, written by the release's agents (WeftNode, owned by its Node) and its
 * clustermesh-apiserver (WeftIdentity), so no helm object owns them; the chart's post-delete hook
 * (`weft uninstall-cleanup`) deletes them once the release is gone.
 *
 * Invariants: nothing is deleted while a pod of the release's agent or clustermesh-apiserver still
 * exists (it would write its copy again); only this cluster's objects are deleted (WeftNodes by
 * spec.cluster, WeftIdentities by their weft.io/cluster label), never another cluster's in a shared
 * API server, nor anything the user owns (policies, the CRDs).
 */
import { sleep } from '@weft/common';
import type { KubeClient } from './client.js';
import { KubernetesApiError } from './errors.js';
import { CLUSTER_LABEL } from './identity-mirror.js';
import { collectionPath, objectPath, type KubeList } from './types.js';

export interface UninstallCleanupOptions {
  cluster: string;
  /** The release's namespace and name (default kube-system, weft). */
  namespace?: string;
  release?: string;
  /** How long to wait for the release's pods to go (default 300 s), and how often to look (default 2 s). */
  timeoutMs?: number;
  pollMs?: number;
  signal?: AbortSignal;
  progress?: (message: string) => void;
}

export interface UninstallCleanupResult {
  cluster: string;
  weftNodes: string[];
  weftIdentities: string[];
}

/** The release's writers of WeftNodes and WeftIdentities, as the chart labels them. */
export function writerSelector(release: string): string {
  return `app.kubernetes.io/name=weft,app.kubernetes.io/instance=${release},app.kubernetes.io/component in (agent,clustermesh-apiserver)`;
}

export async function uninstallCleanup(client: KubeClient, o: UninstallCleanupOptions): Promise<UninstallCleanupResult> {
  const namespace = o.namespace ?? 'kube-system';
  const release = o.release ?? 'weft';
  const say = o.progress ?? (() => undefined);
  const deadline = Date.now() + (o.timeoutMs ?? 300_000);
  for (;;) {
    const pods = await client.request<KubeList>('list the release\'s pods', 'GET', collectionPath('Pod', namespace), { query: { labelSelector: writerSelector(release) }, ...(o.signal ? { signal: o.signal } : {}) });
    const items = pods.items ?? [];
    if (items.length === 0) break;
    const names = items.map((p) => p.metadata?.name ?? '?');
    if (Date.now() >= deadline) throw new KubernetesApiError('clean up after uninstall', 0, '', `pods of release ${namespace}/${release} still exist after ${Math.round((o.timeoutMs ?? 300_000) / 1000)} s: ${names.join(', ')}; they would write their WeftNodes and WeftIdentities again`);
    say(`waiting for ${names.length} pod(s) of release ${namespace}/${release} to go: ${names.join(', ')}`);
    await sleep(o.pollMs ?? 2_000, o.signal);
  }
  const remove = async (kind: 'WeftNode' | 'WeftIdentity', name: string): Promise<void> => {
    try {
      await client.request(`delete ${kind} ${name}`, 'DELETE', objectPath(kind, name), o.signal ? { signal: o.signal } : {});
    } catch (err) {
      // Gone already: what was wanted.
      if (!(err instanceof KubernetesApiError && err.status === 404)) throw err;
    }
  };
  const nodes = await client.request<KubeList>('list WeftNodes', 'GET', collectionPath('WeftNode'), o.signal ? { signal: o.signal } : {});
  const weftNodes = (nodes.items ?? []).filter((n) => (n.spec as { cluster?: unknown } | undefined)?.cluster === o.cluster).map((n) => n.metadata!.name!).sort();
  for (const name of weftNodes) await remove('WeftNode', name);
  const ids = await client.request<KubeList>('list WeftIdentities', 'GET', collectionPath('WeftIdentity'), { query: { labelSelector: `${CLUSTER_LABEL}=${o.cluster}` }, ...(o.signal ? { signal: o.signal } : {}) });
  const weftIdentities = (ids.items ?? []).map((i) => i.metadata!.name!).sort((a, b) => Number(a) - Number(b));
  for (const name of weftIdentities) await remove('WeftIdentity', name);
  say(`cluster ${o.cluster}: deleted ${weftNodes.length} WeftNode(s) and ${weftIdentities.length} WeftIdentity object(s)`);
  return { cluster: o.cluster, weftNodes, weftIdentities };
}
