/** Errors of the agent. */
import { WeftError } from '@weft/common';

export class AgentConfigError extends WeftError {
  static readonly code = 'WEFT_ERR_AGENT_CONFIG';
  constructor(source: string, problem: string) {
    super(AgentConfigError.code, `Invalid agent configuration ${source}: ${problem}`);
  }
}

/** The node's pod CIDR has no free address. */
export class IpamExhaustedError extends WeftError {
  static readonly code = 'WEFT_ERR_IPAM_EXHAUSTED';
  constructor(cidr: string, size: number) {
    super(IpamExhaustedError.code, `Cannot allocate a pod IP: all ${size} addresses of ${cidr} are in use`);
  }
}

/** A CNI request the agent cannot serve (unknown pod, bad netns, ...); carries the CNI error code. */
export class CniRequestError extends WeftError {
  static readonly code = 'WEFT_ERR_CNI';
  readonly cniCode: number;
  constructor(cniCode: number, message: string, options?: { cause?: unknown }) {
    super(CniRequestError.code, message, options);
    this.cniCode = cniCode;
  }
}

/** An endpoint named by the user does not exist on this node. */
export class EndpointNotFoundError extends WeftError {
  static readonly code = 'WEFT_ERR_ENDPOINT_NOT_FOUND';
  constructor(ref: string) {
    super(EndpointNotFoundError.code, `Endpoint ${ref} not found on this node`);
  }
}

export const errorCodes = [AgentConfigError.code, IpamExhaustedError.code, CniRequestError.code, EndpointNotFoundError.code] as const;
