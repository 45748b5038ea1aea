/** Errors of the observer API, each with a stable code (docs/errors.md). */
import { WeftError } from '@weft/common';

/** A flow filter or request that cannot be applied: which field, which value, why. */
export class FlowFilterError extends WeftError {
  static readonly code = 'WEFT_ERR_FLOW_FILTER';
  constructor(
    readonly field: string,
    readonly value: unknown,
    readonly problem: string,
  ) {
    super(FlowFilterError.code, `Invalid flow filter ${field} ${JSON.stringify(value)}: ${problem}`);
  }
}

/** A field mask entry that names no field of a flow: which entry, which path, why. */
export class FlowFieldMaskError extends WeftError {
  static readonly code = 'WEFT_ERR_FLOW_FIELD_MASK';
  constructor(
    readonly field: string,
    readonly value: unknown,
    readonly problem: string,
  ) {
    super(FlowFieldMaskError.code, `Invalid flow field mask ${field} ${JSON.stringify(value)}: ${problem}`);
  }
}

/** The flow exporter cannot start: a bad option, or its file or directory cannot be made or opened. */
export class FlowExportError extends WeftError {
  static readonly code = 'WEFT_ERR_FLOW_EXPORT';
  constructor(action: string, problem: string, options?: { cause?: unknown }) {
    super(FlowExportError.code, `Cannot ${action}: ${problem}`, options);
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

export const errorCodes = [FlowFilterError.code, ObserverUnavailableError.code, ObserverRequestError.code, RelayConfigError.code, PolicyAdvisorError.code, FlowFieldMaskError.code, FlowExportError.code] as const;
