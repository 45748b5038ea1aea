/** The standalone resources Weft stores (shapes of the Kubernetes objects it reads). Leaf module. */

export type ResourceKind = 'Namespace' | 'Pod' | 'Service' | 'NetworkPolicy' | 'WeftNetworkPolicy' | 'WeftClusterwideNetworkPolicy';

export const NAMESPACED: Record<ResourceKind, boolean> = {
  Namespace: false,
  Pod: true,
  Service: true,
  NetworkPolicy: true,
  WeftNetworkPolicy: true,
  WeftClusterwideNetworkPolicy: false,
};

export const API_VERSION: Record<ResourceKind, string> = {
  Namespace: 'v1',
  Pod: 'v1',
  Service: 'v1',
  NetworkPolicy: 'networking.k8s.io/v1',
  WeftNetworkPolicy: 'weft.io/v1',
  WeftClusterwideNetworkPolicy: 'weft.io/v1',
};

export interface Metadata {
  name: string;
  namespace?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/** A stored resource: the validated document, normalized, with its metadata lifted out. */
export interface Resource<S = unknown> {
  apiVersion: string;
  kind: ResourceKind;
  metadata: Metadata;
  spec: S;
}

export interface ContainerSpec {
  name: string;
  command: string[];
  /** The ports the container listens on; a named one can be a NetworkPolicy's `port: <name>`. */
  ports?: ContainerPort[];
}

export interface ContainerPort {
  /** An IANA service name (1-15 of a-z, 0-9 and -, at least one letter), unique in the pod. */
  name?: string;
  containerPort: number;
  protocol: 'TCP' | 'UDP' | 'SCTP';
}

export interface PodSpec {
  nodeName?: string;
  containers: ContainerSpec[];
}

export interface ServicePort {
  name?: string;
  protocol: 'TCP' | 'UDP';
  port: number;
  targetPort: number;
}

export interface ServiceSpec {
  type: 'ClusterIP';
  /** Optional in a request; always set on a stored Service (ResourceStore.apply assigns one of SERVICE_CIDR). */
  clusterIP?: string;
  selector: Record<string, string>;
  ports: ServicePort[];
}

/** `kind/namespace/name`, or `kind/name` for cluster-scoped kinds. */
export function resourceRef(r: { kind: string; metadata: { name: string; namespace?: string | undefined } }): string {
  return r.metadata.namespace !== undefined ? `${r.kind}/${r.metadata.namespace}/${r.metadata.name}` : `${r.kind}/${r.metadata.name}`;
}
