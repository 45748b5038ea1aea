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

/** A key rotation was asked for while one is under way; the keys in force stay. */
export class RotationInProgressError extends WeftError {
  static readonly code = 'WEFT_ERR_ROTATION_IN_PROGRESS';
  constructor(lane: number, phase: string, startedAt: string) {
    super(RotationInProgressError.code, `A key rotation is in progress (lane ${lane}, ${phase}, started ${startedAt}); the keys in force stay until it finishes. See weft encrypt status`);
  }
}

/** A key rotation cannot start now (peers are rotating both lanes, or encryption is off). */
export class RotationUnavailableError extends WeftError {
  static readonly code = 'WEFT_ERR_ROTATION_UNAVAILABLE';
  constructor(reason: string) {
    super(RotationUnavailableError.code, `Cannot rotate keys now: ${reason}`);
  }
}

/**
 * A BPF map of the node has no room for an entry the agent must add (an endpoint's own entry,
 * for instance: without one its traffic is dropped). Names the map, its size and the config key.
 */
export class MapFullError extends WeftError {
  static readonly code = 'WEFT_ERR_MAP_FULL';
  constructor(what: string, map: string, maxEntries: number, sizeKey: string | undefined, options?: { cause?: unknown }) {
    super(MapFullError.code, `Cannot add ${what} to map ${map}: it is full (${maxEntries} entries)${sizeKey ? `; raise mapSizes.${sizeKey} in the agent config` : ''}`, options);
  }
}

/**
 * An endpoint cannot be programmed into the datapath as asked: its interface is gone, or its slot
 * holds another address. Nothing of the request was written.
 */
export class EndpointProgramError extends WeftError {
  static readonly code = 'WEFT_ERR_ENDPOINT_PROGRAM';
  constructor(action: 'program' | 'update the policy of', endpoint: string, problem: string) {
    super(EndpointProgramError.code, `Cannot ${action} endpoint ${endpoint}: ${problem}`);
  }
}

/** Policies name more CIDRs than there are node-local identities for them; the CIDR identities in force stay. */
export class CidrIdentitiesExhaustedError extends WeftError {
  static readonly code = 'WEFT_ERR_CIDR_IDENTITIES_EXHAUSTED';
  constructor(wanted: number, capacity: number) {
    super(CidrIdentitiesExhaustedError.code, `Cannot give identities to the CIDRs of the policies: they name ${wanted} CIDRs and a node has ${capacity} CIDR identities`);
  }
}

export const errorCodes = [AgentConfigError.code, IpamExhaustedError.code, CniRequestError.code, EndpointNotFoundError.code, RotationInProgressError.code, RotationUnavailableError.code, MapFullError.code, EndpointProgramError.code, CidrIdentitiesExhaustedError.code] as const;
