/** Errors of the metrics endpoint, each with a stable code (docs/errors.md). */
import { WeftError } from '@weft/common';

/** The metrics endpoint could not listen: the address, and the system's reason (in use, not local). */
export class MetricsListenError extends WeftError {
  static readonly code = 'WEFT_ERR_METRICS_LISTEN';
  constructor(listen: string, detail: string, options?: { cause?: unknown }) {
    super(MetricsListenError.code, `Cannot serve metrics on ${listen}: ${detail}`, options);
  }
}

/** A metrics `listen` setting that is not IPv4:port. */
export class MetricsConfigError extends WeftError {
  static readonly code = 'WEFT_ERR_METRICS_CONFIG';
  constructor(listen: unknown, problem: string) {
    super(MetricsConfigError.code, `Invalid metrics listen address ${JSON.stringify(listen)}: ${problem}`);
  }
}

/** The exposition broke a rule of the format: the line, and which rule. */
export class ExpositionError extends WeftError {
  static readonly code = 'WEFT_ERR_METRICS_EXPOSITION';
  constructor(line: number, problem: string) {
    super(ExpositionError.code, `Invalid metrics exposition at line ${line}: ${problem}`);
  }
}

export const errorCodes = [MetricsListenError.code, MetricsConfigError.code, ExpositionError.code] as const;
