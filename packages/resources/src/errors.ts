/** Errors of the resources package. */
import { WeftError } from '@weft/common';

/** A document is not a valid resource; the message names the document, the field and the problem. */
export class InvalidResourceError extends WeftError {
  static readonly code = 'WEFT_ERR_RESOURCE_INVALID';
  constructor(where: string, problem: string, options?: { cause?: unknown }) {
    super(InvalidResourceError.code, `Invalid resource ${where}: ${problem}`, options);
  }
}

/** A named resource does not exist. */
export class ResourceNotFoundError extends WeftError {
  static readonly code = 'WEFT_ERR_RESOURCE_NOT_FOUND';
  constructor(ref: string) {
    super(ResourceNotFoundError.code, `Resource ${ref} not found`);
  }
}

export const errorCodes = [InvalidResourceError.code, ResourceNotFoundError.code] as const;
