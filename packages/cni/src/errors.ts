/** Errors of the CNI package (the plugin itself answers in the CNI spec's error JSON instead). */
import { WeftError } from '@weft/common';

/**
 * Installing or removing the CNI plugin failed: a directory is missing, not a directory or not
 * writable, or a write or removal failed (errno in the message). Nothing half-written is left.
 */
export class CniInstallError extends WeftError {
  static readonly code = 'WEFT_ERR_CNI_INSTALL';
  constructor(message: string, options?: { cause?: unknown }) {
    super(CniInstallError.code, message, options);
  }
}

/** A file where install would write is not one Weft wrote (it carries no weft-managed marker). */
export class CniFileConflictError extends WeftError {
  static readonly code = 'WEFT_ERR_CNI_FILE_CONFLICT';
  constructor(readonly path: string) {
    super(CniFileConflictError.code, `Cannot install the CNI plugin: ${path} exists and was not written by weft cni install; move it away or remove it first`);
  }
}

export const errorCodes = [CniInstallError.code, CniFileConflictError.code] as const;
