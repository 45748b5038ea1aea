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

export const errorCodes = [MeshConfigError.code, MeshCertError.code] as const;
