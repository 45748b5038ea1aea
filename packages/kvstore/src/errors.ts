/**
 * Errors of the kvstore package. `KvstoreUnavailableError` is the one callers
 * retry; everything else is final for the request that raised it.
 */
import { WeftError } from '@weft/common';

/** etcd could not be reached, or did not answer in time. Transient: retry with backoff. */
export class KvstoreUnavailableError extends WeftError {
  static readonly code = 'WEFT_ERR_KVSTORE_UNAVAILABLE';
  constructor(action: string, endpoints: readonly string[], options?: { cause?: unknown }) {
    const cause = options?.cause instanceof Error ? `: ${options.cause.message}` : '';
    super(KvstoreUnavailableError.code, `Cannot ${action}: etcd at ${endpoints.join(',')} is unavailable${cause}`, options);
  }
}

/** etcd answered, but refused the request (bad request, permission, too large). */
export class KvstoreRequestError extends WeftError {
  static readonly code = 'WEFT_ERR_KVSTORE_REQUEST';
  constructor(action: string, options?: { cause?: unknown }) {
    const cause = options?.cause instanceof Error ? `: ${options.cause.message}` : '';
    super(KvstoreRequestError.code, `Cannot ${action}: etcd rejected the request${cause}`, options);
  }
}

/**
 * etcd refused the request because this client's user (the CN of its certificate) holds no role
 * that allows it: a node writing another node's keys, an apiserver writing agent state.
 */
export class KvstorePermissionError extends WeftError {
  static readonly code = 'WEFT_ERR_KVSTORE_PERMISSION';
  constructor(action: string, options?: { cause?: unknown }) {
    super(KvstorePermissionError.code, `Cannot ${action}: permission denied by etcd's access control: this client's etcd user (its certificate's CN) has no role that allows it (docs/credentials.md)`, options);
  }
}

/** The session's lease expired or was revoked; keys bound to it are gone. */
export class SessionLostError extends WeftError {
  static readonly code = 'WEFT_ERR_KVSTORE_SESSION_LOST';
  constructor(leaseId: string, reason: string, options?: { cause?: unknown }) {
    super(SessionLostError.code, `Session lease ${leaseId} was lost: ${reason}`, options);
  }
}

/** A lock was not acquired within the caller's timeout. */
export class LockTimeoutError extends WeftError {
  static readonly code = 'WEFT_ERR_KVSTORE_LOCK_TIMEOUT';
  constructor(name: string, timeoutMs: number) {
    super(LockTimeoutError.code, `Cannot acquire lock "${name}": not granted within ${timeoutMs} ms`);
  }
}

/** The client was closed while the request was pending or before it was made. */
export class KvstoreClosedError extends WeftError {
  static readonly code = 'WEFT_ERR_KVSTORE_CLOSED';
  constructor(action: string) {
    super(KvstoreClosedError.code, `Cannot ${action}: the kvstore client is closed`);
  }
}

/** The embedded etcd process could not be started or did not become healthy. */
export class EtcdStartError extends WeftError {
  static readonly code = 'WEFT_ERR_ETCD_START';
  constructor(message: string, options?: { cause?: unknown }) {
    super(EtcdStartError.code, message, options);
  }
}

/** A certificate could not be issued: bad input (name, address, CA key or request), refused, or a crypto failure. */
export class CertificateError extends WeftError {
  static readonly code = 'WEFT_ERR_CERTIFICATE';
  constructor(problem: string, options?: { cause?: unknown }) {
    super(CertificateError.code, `Cannot issue a certificate: ${problem}`, options);
  }
}

export const errorCodes = [
  KvstoreUnavailableError.code,
  KvstoreRequestError.code,
  KvstorePermissionError.code,
  SessionLostError.code,
  LockTimeoutError.code,
  KvstoreClosedError.code,
  EtcdStartError.code,
  CertificateError.code,
] as const;
