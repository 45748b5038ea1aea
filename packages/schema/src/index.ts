/**
 * @weft/schema: the records nodes and clusters exchange, below both the agent and the
 * clustermesh-apiserver. Keys and prefixes in etcd, the records' types and their parsers (every
 * record is data from someone else, checked before use), the ownership rules readers hold endpoint
 * records to, and the service records of global services.
 */
export {
  STATE_ROOT,
  MESH_ROOT,
  MESH_CLUSTERS_PREFIX,
  CLUSTER_NAME_RE,
  meshClusterRoot,
  parseClusterInfo,
  NODES_PREFIX,
  ENDPOINTS_PREFIX,
  nodeKey,
  nodeEndpointsPrefix,
  endpointKey,
  parseEndpointPath,
  parseNodeRecord,
  parseEndpointRecord,
  MAX_NAMED_PORTS,
  type NodeRecord,
  type EndpointRecord,
  type IpsecRecord,
  type Lane,
  type WireGuardRecord,
  type WireGuardLaneRecord,
} from './state.js';
export { EndpointOwnership, type EndpointOwnershipEvents } from './endpoint-ownership.js';
export {
  GLOBAL_ANNOTATION,
  SHARED_ANNOTATION,
  AFFINITY_ANNOTATION,
  serviceRecordKey,
  serviceView,
  exportRecord,
  parseServiceRecord,
  type Affinity,
  type ServiceView,
  type ServiceRecord,
} from './service-record.js';
export {
  DEFAULT_MIN_POD_CIDR_BITS,
  LocalAddresses,
  RemoteClaims,
  remoteNodeProblem,
  remoteEndpointProblem,
  type LocalAddressInput,
  type LocalRange,
  type NodeRules,
} from './mesh-admission.js';
