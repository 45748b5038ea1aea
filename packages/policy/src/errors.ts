/** Errors of the policy package. */
import { WeftError } from '@weft/common';

/** A policy document is invalid; `path` names the field (e.g. spec.ingress[0].toPorts[0].ports[1].port). */
export class InvalidPolicyError extends WeftError {
  static readonly code = 'WEFT_ERR_POLICY_INVALID';
  readonly path: string;
  constructor(source: string, path: string, problem: string) {
    super(InvalidPolicyError.code, `Invalid policy ${source}: ${path}: ${problem}`);
    this.path = path;
  }
}

export const errorCodes = [InvalidPolicyError.code] as const;
