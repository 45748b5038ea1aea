export { IdentityAllocator, type AllocatorOptions, type Allocation, type IdentityMove, type LabelsInput } from './allocator.js';
export { IdentityCache, type IdentityCacheOptions, type IdentityChange } from './cache.js';
export { IdentityGarbageCollector, type GcOptions, type GcRound } from './gc.js';
export { EtcdIdentityBackend } from './etcd-backend.js';
export type { IdentityBackend, StoreView, WriteResult } from './backend.js';
export { IdentityLayout, DEFAULT_ROOT } from './layout.js';
export {
  LabelSet,
  LabelFilter,
  parseLabel,
  makeLabel,
  formatLabel,
  workloadLabels,
  CLUSTER_LABEL,
  NAMESPACE_LABEL,
  NAMESPACE_LABELS_PREFIX,
  DEFAULT_EXCLUDED_KEYS,
  type Label,
  type LabelFilterOptions,
} from './labels.js';
export {
  ReservedIdentity,
  reservedName,
  isReserved,
  validateClusterId,
  makeIdentity,
  clusterIdOf,
  localIdOf,
  identityRange,
  inCluster,
  parseIdentity,
  CLUSTER_ID_MIN,
  CLUSTER_ID_MAX,
  LOCAL_ID_MIN,
  LOCAL_ID_MAX,
  IDENTITY_MAX,
  type IdentityRange,
  type ReservedName,
} from './numeric.js';
export {
  InvalidLabelError,
  InvalidClusterIdError,
  IdentityOutOfRangeError,
  IdentityExhaustedError,
  IdentityConflictError,
  AllocatorStoppedError,
  CorruptIdentityEntryError,
  IdentityNotHeldError,
  errorCodes,
} from './errors.js';
