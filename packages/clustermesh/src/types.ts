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
  /**
   * Allow-list: the only ranges this remote's nodes may take pod CIDRs from. No other remote
   * may use them either. Absent: any range that passes the other checks (mesh-admission.ts).
   */
  podCidrs?: string[];
  /** Caps on this remote's records, per kind, over the cluster's `limits`. */
  limits?: Partial<MeshLimits>;
}

/**
 * Most records of each kind one remote may hold here, and most bytes (keys and values) of all
 * its records: a record count alone would let 16 KiB records add up to gigabytes. More are
 * rejected and counted.
 */
export type MeshLimits = Record<MeshKind | 'bytes', number>;

/** What MeshLimits caps, in the order status and errors name them. */
export const LIMIT_KEYS: ReadonlyArray<keyof MeshLimits> = ['identities', 'nodes', 'endpoints', 'services', 'bytes'];

/**
 * Defaults: above the scale the mesh is built for (100k endpoints, 10k identities, 1k services
 * per cluster, some 40 MiB of records; docs/clustermesh.md), far below what would exhaust the
 * local etcd (its 2 GiB default quota) or the apiserver's memory.
 */
export const DEFAULT_LIMITS: Readonly<MeshLimits> = { identities: 20_000, nodes: 5_000, endpoints: 150_000, services: 5_000, bytes: 256 << 20 };

export interface MeshConfig {
  cluster: string;
  /**
   * The cluster's relay: connected clusters' relays ask it for this cluster's flows through this
   * apiserver's port (observer-forward.ts); absent, they get UNIMPLEMENTED. `relay` is `unix:///path`
   * or host:port (`${NAME}` read from the environment: the chart's Service link variable), the
   * latter with `tls` (PEM file paths: the observer CA, our client certificate and key) and the name
   * the relay's certificate carries (`serverName`).
   */
  observer?: { relay: string; tls?: { ca: string; cert: string; key: string }; serverName?: string };
  /**
   * Prometheus metrics (mesh-metrics.ts, docs/metrics.md): plain HTTP GET /metrics on `listen`
   * (IPv4:port; the chart's 0.0.0.0:9963). Absent: no metrics endpoint.
   */
  metrics?: { listen: string };
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
  /**
   * This cluster's pod ranges beyond its nodes' pod CIDRs (which come from its etcd), e.g. a
   * Kubernetes cluster CIDR: remote pod CIDRs and node IPs must stay out of them.
   */
  podCidrs?: string[];
  /** The nodes' underlay networks: remote pod CIDRs must stay out of them (remote node IPs may share them). */
  underlayCidrs?: string[];
  /** The cluster's Service ranges. Default 10.96.0.0/16 (standalone's). */
  serviceCidrs?: string[];
  /** The shortest pod CIDR a remote node may claim. Default 16. */
  minPodCidrBits?: number;
  /** Caps on each remote's records, per kind (default DEFAULT_LIMITS); a remote's `limits` overrides. */
  limits?: Partial<MeshLimits>;
  /**
   * A remote that reads nothing of what we send for this long is disconnected (its backlog freed);
   * it reconnects and gets a fresh snapshot. Default 300.
   */
  exportStallSeconds?: number;
}

export { MESH_ROOT } from '@weft/schema';
