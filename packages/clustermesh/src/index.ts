export { ClusterMeshApiServer, MESH_STATUS_PREFIX, type MeshStatus } from './apiserver.js';
export { Importer, type RemoteStatus, type LinkState } from './importer.js';
export { Exporter } from './exporter.js';
export { checkRemotes, loadMeshConfig, type RemoteProblem } from './config.js';
export { checkRecord, MAX_RECORD_BYTES } from './validate.js';
export { createCa, issue, type Pem } from './certs.js';
export { MESH_ROOT, MESH_KINDS, type MeshConfig, type RemoteConfig, type MeshKind, type SyncBatch, type SyncRequest } from './types.js';
export { MeshConfigError, MeshCertError, errorCodes } from './errors.js';
