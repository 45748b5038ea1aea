/** Errors of the clustermesh package. */
import { WeftError } from '@weft/common';

/** Clustermesh configuration (ours or a remote's) is invalid; names the field. */
export class MeshConfigError extends WeftError {
  static readonly code = 'WEFT_ERR_MESH_CONFIG';
  constructor(problem: string) {
    super(MeshConfigError.code, `Invalid clustermesh configuration: ${problem}`);
  }
}

/** Creating certificates failed (openssl). */
export class MeshCertError extends WeftError {
  static readonly code = 'WEFT_ERR_MESH_CERT';
  constructor(problem: string, options?: { cause?: unknown }) {
    super(MeshCertError.code, `Cannot create clustermesh certificates: ${problem}`, options);
  }
}

/** `clustermesh connect|disconnect`: a cluster lacks what connecting needs (chart, CA key, endpoint); nothing was written. */
export class MeshPrerequisiteError extends WeftError {
  static readonly code = 'WEFT_ERR_MESH_PREREQUISITE';
  constructor(action: string, problem: string) {
    super(MeshPrerequisiteError.code, `Cannot ${action}: ${problem}`);
  }
}

/** `clustermesh connect`: the two clusters share a name or id, or one already knows the other another way; nothing was written. */
export class MeshConflictError extends WeftError {
  static readonly code = 'WEFT_ERR_MESH_CONFLICT';
  constructor(action: string, problem: string) {
    super(MeshConflictError.code, `Cannot ${action}: ${problem}`);
  }
}

/** `clustermesh connect|disconnect`: a write failed; the message says what was rolled back and what, if anything, is left. */
export class MeshWriteError extends WeftError {
  static readonly code = 'WEFT_ERR_MESH_WRITE';
  constructor(action: string, problem: string, options?: { cause?: unknown }) {
    super(MeshWriteError.code, `Cannot ${action}: ${problem}`, options);
  }
}

/** `clustermesh connect --wait`: a clustermesh-apiserver Deployment did not roll out in time (the configuration is written). */
export class MeshRolloutError extends WeftError {
  static readonly code = 'WEFT_ERR_MESH_ROLLOUT';
  constructor(problem: string) {
    super(MeshRolloutError.code, `The clustermesh-apiserver did not roll out: ${problem}`);
  }
}

/** A node's etcd credential (user, role, certificate) cannot be issued: bad or reserved node name, a request the issuer refuses. */
export class EtcdCredentialError extends WeftError {
  static readonly code = 'WEFT_ERR_ETCD_CREDENTIAL';
  constructor(problem: string, options?: { cause?: unknown }) {
    super(EtcdCredentialError.code, `Cannot issue an etcd credential: ${problem}`, options);
  }
}

export const errorCodes = [EtcdCredentialError.code, MeshConfigError.code, MeshCertError.code, MeshPrerequisiteError.code, MeshConflictError.code, MeshWriteError.code, MeshRolloutError.code] as const;
