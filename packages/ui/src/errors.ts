/** Errors of the service map (`weft ui`), each with a stable code (docs/errors.md). */
import { WeftError } from '@weft/common';

/** The server cannot listen where it was asked: the address, and the system's reason. */
export class UiListenError extends WeftError {
  static readonly code = 'WEFT_ERR_UI_LISTEN';
  constructor(address: string, detail: string, options?: { cause?: unknown }) {
    super(UiListenError.code, `Cannot serve the service map at ${address}: ${detail}`, options);
  }
}

/** A request to the service map's API that cannot be answered: which parameter, which value, why (HTTP 400). */
export class UiRequestError extends WeftError {
  static readonly code = 'WEFT_ERR_UI_REQUEST';
  constructor(parameter: string, value: string, problem: string) {
    super(UiRequestError.code, `Invalid ${parameter} ${JSON.stringify(value)}: ${problem}`);
  }
}

export const errorCodes = [UiListenError.code, UiRequestError.code] as const;
