/**
 * The lab's names and addresses, computed from its spec (pure, so tested
 * without root). Everything lives in network namespaces the lab creates:
 *
 *   weft-lab-ul            underlay: a bridge joining every node, control plane and the world host
 *   weft-lab-world         a host outside every cluster ("world"), 10.99.255.250
 *   weft-<c>-cp            cluster c's control plane: its etcd, 10.99.<k>.2
 *   weft-<c>-node<n>       node n of cluster c: its agent, 10.99.<k>.<10+n>; pods 10.<100+k>.<n>.0/24
 *   weft-<c>-<hash>        one per pod
 *
 * Nothing is attached to the machine's own network namespace, so no lab
 * packet can leave the machine.
 */

export interface LabSpec {
  clusters: Array<{ name: string; id: number }>;
  nodes: number;
  routing: 'vxlan' | 'geneve' | 'direct';
  /** Connect the clusters with each other (default true). */
  connect?: boolean;
  /** Pod traffic between nodes (default wireguard). */
  encryption?: 'wireguard' | 'ipsec' | 'off';
  /**
   * Also give each cluster a real Kubernetes control plane, real nodes (kubelet and containerd,
   * kube/node-runtime.ts) and Weft installed by helm (kube-lab.ts).
   */
  kubernetes?: boolean;
}

export const LAB_PREFIX = 'weft-';
export const UNDERLAY_NS = 'weft-lab-ul';
export const WORLD_NS = 'weft-lab-world';
export const BRIDGE = 'br0';
export const UNDERLAY_BITS = 16;
export const WORLD_IP = '10.99.255.250';
export const LAB_STATE_DIR = '/var/run/weft/lab';
export const PIN_ROOT = '/sys/fs/bpf/weft';

export interface NodeLayout {
  cluster: string;
  clusterId: number;
  index: number;
  name: string;
  netns: string;
  ip: string;
  podCidr: string;
  /** Underlay-side veth (in weft-lab-ul) and node-side device. */
  ulPeer: string;
  stateDir: string;
  pinRoot: string;
}

export interface ClusterLayout {
  name: string;
  id: number;
  cpNetns: string;
  cpIp: string;
  cpUlPeer: string;
  etcdDir: string;
  /** Every pod CIDR of the cluster's nodes lies in it: 10.<100+k>.0.0/16. */
  podRange: string;
  nodes: NodeLayout[];
}

export function clusterLayout(c: { name: string; id: number }, k: number, nodes: number): ClusterLayout {
  return {
    name: c.name,
    id: c.id,
    cpNetns: `weft-${c.name}-cp`,
    cpIp: `10.99.${k}.2`,
    cpUlPeer: `${c.name.slice(0, 8)}-cp`,
    etcdDir: `${LAB_STATE_DIR}/${c.name}/etcd`,
    podRange: `10.${100 + k}.0.0/16`,
    nodes: Array.from({ length: nodes }, (_, i) => {
      const n = i + 1;
      const name = `${c.name}-node${n}`;
      return {
        cluster: c.name,
        clusterId: c.id,
        index: n,
        name,
        netns: `weft-${name}`,
        ip: `10.99.${k}.${10 + n}`,
        podCidr: `10.${100 + k}.${n}.0/24`,
        ulPeer: `${c.name.slice(0, 8)}-n${n}`,
        stateDir: `/var/run/weft/${c.name}/${name}`,
        pinRoot: `${PIN_ROOT}/${c.name}-${name}`,
      };
    }),
  };
}

export function labLayout(spec: LabSpec): ClusterLayout[] {
  return spec.clusters.map((c, i) => clusterLayout(c, i + 1, spec.nodes));
}
