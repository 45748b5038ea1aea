/** Errors of the observer API, each with a stable code (docs/errors.md). */
import { WeftError } from '@weft/common';

/** A flow filter or request that cannot be applied: which field, which value, why. */
export class FlowFilterError extends WeftError {
  static readonly code = 'WEFT_ERR_FLOW_FILTER';
  constructor(field: string, value: unknown, problem: string) {
    super(FlowFilterError.code, `Invalid flow filter ${field} ${JSON.stringify(value)}: ${problem}`);
  }
}

/** An observer (agent or relay) could not be reached or ended a call with an error. */
export class ObserverUnavailableError extends WeftError {
  static readonly code = 'WEFT_ERR_OBSERVER_UNAVAILABLE';
  constructor(address: string, detail: string, options?: { cause?: unknown }) {
    super(ObserverUnavailableError.code, `Cannot reach the observer at ${address}: ${detail}`, options);
  }
}

/** An observer refused a request as invalid (gRPC INVALID_ARGUMENT): its message says what and where. */
export class ObserverRequestError extends WeftError {
  static readonly code = 'WEFT_ERR_OBSERVER_REQUEST';
  constructor(address: string, detail: string, options?: { cause?: unknown }) {
    super(ObserverRequestError.code, `The observer at ${address} refused the request: ${detail}`, options);
  }
}

/** The relay's configuration is invalid: which field, why. */
export class RelayConfigError extends WeftError {
  static readonly code = 'WEFT_ERR_RELAY_CONFIG';
  constructor(where: string, problem: string) {
    super(RelayConfigError.code, `Invalid relay configuration ${where}: ${problem}`);
  }
}

/** The policy advisor cannot suggest from what it was given: which input, why. */
export class PolicyAdvisorError extends WeftError {
  static readonly code = 'WEFT_ERR_POLICY_ADVISOR';
  constructor(problem: string) {
    super(PolicyAdvisorError.code, `Cannot suggest policies: ${problem}`);
  }
}

export const errorCodes = [FlowFilterError.code, ObserverUnavailableError.code, ObserverRequestError.code, RelayConfigError.code, PolicyAdvisorError.code] as const;
