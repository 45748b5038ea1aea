/**
 * The base of every error Weft throws. Callers branch on `code`, which is stable
 * across releases and documented in docs/errors.md; messages are for people and
 * may change.
 */
export class WeftError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }

  toJSON(): { code: string; message: string } {
    return { code: this.code, message: this.message };
  }
}

/** An operation was cancelled through its AbortSignal. */
export class AbortedError extends WeftError {
  static readonly code = 'WEFT_ERR_ABORTED';
  constructor(action: string, options?: { cause?: unknown }) {
    super(AbortedError.code, `${action} was aborted`, options);
  }
}

/** Codes defined by this package, for the documentation check. */
export const errorCodes = [AbortedError.code] as const;
