export { KvClient, cmp, op, prefixEnd, type KvClientOptions, type CallOptions } from './client.js';
export { Session, type SessionOptions } from './session.js';
export { Mutex, type LockHandle, type LockOptions } from './mutex.js';
export { PrefixWatcher, type WatchHandler, type PrefixWatcherOptions } from './watcher.js';
export { markSynced, readSynced, clearSynced, syncedKey, SYNCED_ROOT, type SyncedMarker } from './synced.js';
export { readEtcdTlsFiles, type EtcdTlsFiles } from './tls-files.js';
export { requestEtcdCredential, type CredentialRequest, type IssuedNodeCredential } from './credential-request.js';
export { EtcdAuth, type EtcdRole, type EtcdPermission, type EtcdPermissionType } from './auth.js';
export { createCa, issue, createCsr, issueFromCsr, type Pem, type IssueOptions } from './pki.js';
export { EtcdProcess, etcdHealthy, freePort, type EtcdProcessOptions, type EtcdClientTls } from './etcd-process.js';
export {
  KvstoreUnavailableError,
  KvstoreRequestError,
  KvstorePermissionError,
  SessionLostError,
  LockTimeoutError,
  KvstoreClosedError,
  EtcdStartError,
  CertificateError,
  errorCodes,
} from './errors.js';
export type * from './types.js';
export { useTestEtcd, until, type TestEtcd } from './testing.js';
