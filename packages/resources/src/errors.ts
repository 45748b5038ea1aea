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

/** A Service asks for a clusterIP another Service holds; names both. Nothing of the request is stored. */
export class ClusterIPInUseError extends WeftError {
  static readonly code = 'WEFT_ERR_RESOURCE_CLUSTER_IP_IN_USE';
  constructor(ref: string, ip: string, owner: string) {
    super(ClusterIPInUseError.code, `Cannot apply ${ref}: spec.clusterIP ${ip} is in use by ${owner}`);
  }
}

/** Every address of the service range is taken. Nothing of the request is stored. */
export class ClusterIPExhaustedError extends WeftError {
  static readonly code = 'WEFT_ERR_RESOURCE_CLUSTER_IP_EXHAUSTED';
  constructor(ref: string, cidr: string) {
    super(ClusterIPExhaustedError.code, `Cannot allocate a clusterIP for ${ref}: every address of the service range ${cidr} is in use`);
  }
}

/** A request kept losing races with concurrent writers and gave up after its attempts. Nothing of it is stored. */
export class ResourceConflictError extends WeftError {
  static readonly code = 'WEFT_ERR_RESOURCE_CONFLICT';
  constructor(action: string, attempts: number) {
    super(ResourceConflictError.code, `Cannot ${action}: concurrent changes to the same objects or clusterIPs, still conflicting after ${attempts} attempts`);
  }
}

export const errorCodes = [
  InvalidResourceError.code,
  ResourceNotFoundError.code,
  ClusterIPInUseError.code,
  ClusterIPExhaustedError.code,
  ResourceConflictError.code,
] as const;
