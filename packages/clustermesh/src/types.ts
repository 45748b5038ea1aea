/** Wire types of the mesh protocol. Leaf module. */

export type MeshKind = 'identities' | 'nodes' | 'endpoints' | 'services';
export const MESH_KINDS: readonly MeshKind[] = ['identities', 'nodes', 'endpoints', 'services'];

export interface SyncRequest {
  /** Name of the cluster asking (checked against its certificate). */
  cluster: string;
  kinds: MeshKind[];
}

/** One message of the Sync stream: a batch of one kind. */
export interface SyncBatch {
  kind: MeshKind;
  /** key -> JSON value, in the exporter's own record format. */
  upserts: Array<[string, string]>;
  deletes: string[];
  /** Set on the batch that completes a snapshot. */
  synced?: boolean;
}

export interface RemoteConfig {
  name: string;
  id: number;
  /** host:port of the remote's clustermesh-apiserver. */
  address: string;
  /** PEM: the remote's CA, and our client certificate and key issued by it. */
  ca: string;
  cert: string;
  key: string;
}

export interface MeshConfig {
  cluster: string;
  clusterId: number;
  etcd: string[];
  /**
   * Mutual TLS to the local etcd: paths of PEM files (the CA of etcd's server certificate, our
   * client certificate and key), read when the apiserver starts. Paths, not inline PEM as `ca`
   * below: with an external etcd they come from a Secret the chart mounts but cannot read.
   * Absent: plain connections (the lab).
   */
  etcdTls?: { ca: string; cert: string; key: string };
  /** host:port to serve on. */
  listen: string;
  /** PEM: our CA (clients must present a certificate it signed), our server certificate and key. */
  ca: string;
  cert: string;
  key: string;
  remotes: RemoteConfig[];
  /** How long a disconnected remote's state is kept, in seconds. Default 600. */
  staleAfterSeconds?: number;
  /** Operations per transaction the local etcd accepts (its --max-txn-ops). Default 128, etcd's default. */
  etcdMaxTxnOps?: number;
  /** Where this cluster's Services come from: its etcd (standalone, the default) or the Kubernetes API server. */
  source?: 'standalone' | 'kubernetes';
  /** kubernetes mode: a kubeconfig file (development); default the pod's service account. */
  kubeconfig?: string;
  /**
   * A directory of more remotes, one RemoteConfig JSON per file named `<remote>.json`: the Secret
   * `weft clustermesh connect` writes, which Helm does not manage. Added to `remotes`; a missing or
   * empty directory adds none.
   */
  remotesDir?: string;
}

export const MESH_ROOT = 'weft/mesh/v1/';
