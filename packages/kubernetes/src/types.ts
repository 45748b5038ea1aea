/** The Kubernetes API's wire shapes Weft reads, and where each kind lives. Leaf module. */

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [field: string]: unknown;
}

/** Any object as the API server sends it. List items of built-in kinds carry no kind or apiVersion. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  [field: string]: unknown;
}

/** A list response: `metadata.resourceVersion` is where a watch continues; `continue` pages. */
export interface KubeList {
  apiVersion?: string;
  kind?: string;
  metadata?: { resourceVersion?: string; continue?: string };
  items?: KubeObject[];
}

/** A meta/v1 Status (errors, and the object of a watch ERROR event). */
export interface KubeStatus {
  kind?: 'Status';
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
}

/** One line of a watch stream. */
export interface KubeWatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: KubeObject;
}

/** Where a kind is served: `group/version` (or `v1`), its plural, and its scope. */
export interface KindInfo {
  apiVersion: string;
  plural: string;
  namespaced: boolean;
}

/** Every kind Weft reads or writes. */
export const KINDS = {
  Namespace: { apiVersion: 'v1', plural: 'namespaces', namespaced: false },
  Pod: { apiVersion: 'v1', plural: 'pods', namespaced: true },
  Service: { apiVersion: 'v1', plural: 'services', namespaced: true },
  Node: { apiVersion: 'v1', plural: 'nodes', namespaced: false },
  EndpointSlice: { apiVersion: 'discovery.k8s.io/v1', plural: 'endpointslices', namespaced: true },
  NetworkPolicy: { apiVersion: 'networking.k8s.io/v1', plural: 'networkpolicies', namespaced: true },
  WeftNetworkPolicy: { apiVersion: 'weft.io/v1', plural: 'weftnetworkpolicies', namespaced: true },
  WeftClusterwideNetworkPolicy: { apiVersion: 'weft.io/v1', plural: 'weftclusterwidenetworkpolicies', namespaced: false },
  WeftNode: { apiVersion: 'weft.io/v1', plural: 'weftnodes', namespaced: false },
  WeftIdentity: { apiVersion: 'weft.io/v1', plural: 'weftidentities', namespaced: false },
  // `weft clustermesh connect`: the chart's mesh Secrets and the clustermesh-apiserver Deployment.
  Secret: { apiVersion: 'v1', plural: 'secrets', namespaced: true },
  Deployment: { apiVersion: 'apps/v1', plural: 'deployments', namespaced: true },
  // `weft connectivity test --context`: the chart's agent config and DaemonSet, and events of its pods.
  ConfigMap: { apiVersion: 'v1', plural: 'configmaps', namespaced: true },
  DaemonSet: { apiVersion: 'apps/v1', plural: 'daemonsets', namespaced: true },
  Event: { apiVersion: 'v1', plural: 'events', namespaced: true },
} as const satisfies Record<string, KindInfo>;

export type KubeKind = keyof typeof KINDS;

/** The collection path of a kind: across all namespaces, or within one. */
export function collectionPath(kind: KubeKind, namespace?: string): string {
  const k: KindInfo = KINDS[kind];
  const root = k.apiVersion === 'v1' ? '/api/v1' : `/apis/${k.apiVersion}`;
  return k.namespaced && namespace !== undefined ? `${root}/namespaces/${encodeURIComponent(namespace)}/${k.plural}` : `${root}/${k.plural}`;
}

/** The path of one object. */
export function objectPath(kind: KubeKind, name: string, namespace?: string): string {
  return `${collectionPath(kind, KINDS[kind].namespaced ? (namespace ?? 'default') : undefined)}/${encodeURIComponent(name)}`;
}

/** The name prefix of the chart's objects for a Helm release (weft.fullname in charts/weft/templates/_helpers.tpl). */
export function chartFullname(release: string): string {
  return (release.includes('weft') ? release : `${release}-weft`).slice(0, 40).replace(/-$/, '');
}
