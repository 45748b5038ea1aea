/** Errors of the identity package, each with a stable code (docs/errors.md). */
import { WeftError } from '@weft/common';

/** A label or label set is malformed. The message names the label and what is wrong. */
export class InvalidLabelError extends WeftError {
  static readonly code = 'WEFT_ERR_IDENTITY_INVALID_LABEL';
  constructor(message: string) {
    super(InvalidLabelError.code, message);
  }
}

/** A cluster id outside 1-255. */
export class InvalidClusterIdError extends WeftError {
  static readonly code = 'WEFT_ERR_IDENTITY_CLUSTER_ID';
  constructor(action: string, clusterId: unknown) {
    super(InvalidClusterIdError.code, `Cannot ${action}: cluster id ${JSON.stringify(clusterId)} is out of range 1-255`);
  }
}

/** A numeric identity that does not belong where it was used (wrong cluster, not 24 bits, reserved). */
export class IdentityOutOfRangeError extends WeftError {
  static readonly code = 'WEFT_ERR_IDENTITY_OUT_OF_RANGE';
  constructor(message: string) {
    super(IdentityOutOfRangeError.code, message);
  }
}

/** Every local identity of the cluster's range is in use. */
export class IdentityExhaustedError extends WeftError {
  static readonly code = 'WEFT_ERR_IDENTITY_EXHAUSTED';
  constructor(labels: string, clusterId: number, first: number, last: number) {
    super(
      IdentityExhaustedError.code,
      `Cannot allocate identity for labels "${labels}": all ${last - first + 1} identities of cluster ${clusterId} (${first}-${last}) are in use`,
    );
  }
}

/** Allocation kept losing races and gave up after its attempts. */
export class IdentityConflictError extends WeftError {
  static readonly code = 'WEFT_ERR_IDENTITY_CONFLICT';
  constructor(labels: string, attempts: number) {
    super(IdentityConflictError.code, `Cannot allocate identity for labels "${labels}": still conflicting after ${attempts} attempts`);
  }
}

/** The allocator was stopped (or not started) when the call was made. */
export class AllocatorStoppedError extends WeftError {
  static readonly code = 'WEFT_ERR_IDENTITY_ALLOCATOR_STOPPED';
  constructor(action: string) {
    super(AllocatorStoppedError.code, `Cannot ${action}: the identity allocator is not running`);
  }
}

/** A value in etcd that is not a valid identity record; reported, skipped, never trusted. */
export class CorruptIdentityEntryError extends WeftError {
  static readonly code = 'WEFT_ERR_IDENTITY_CORRUPT_ENTRY';
  constructor(key: string, reason: string) {
    super(CorruptIdentityEntryError.code, `Skipped corrupt identity entry at ${key}: ${reason}`);
  }
}

/** Releasing an identity this node does not hold. */
export class IdentityNotHeldError extends WeftError {
  static readonly code = 'WEFT_ERR_IDENTITY_NOT_HELD';
  constructor(labels: string) {
    super(IdentityNotHeldError.code, `Cannot release identity for labels "${labels}": this node holds no reference to it`);
  }
}

export const errorCodes = [
  InvalidLabelError.code,
  InvalidClusterIdError.code,
  IdentityOutOfRangeError.code,
  IdentityExhaustedError.code,
  IdentityConflictError.code,
  AllocatorStoppedError.code,
  CorruptIdentityEntryError.code,
  IdentityNotHeldError.code,
] as const;
