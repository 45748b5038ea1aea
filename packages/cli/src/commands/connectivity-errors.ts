/** Errors of `weft connectivity test --context` (Kubernetes clusters running the chart). */
import { WeftError } from '@weft/common';

/** A cluster lacks what the test needs (the chart, its CRDs, a schedulable node) or holds a leftover namespace. */
export class ConnectivityPrerequisiteError extends WeftError {
  static readonly code = 'WEFT_ERR_CONNTEST_PREREQUISITE';
  constructor(problem: string) {
    super(ConnectivityPrerequisiteError.code, `Cannot run the connectivity test: ${problem}`);
  }
}

/** The test's echo server pods did not become ready in time; the message names each pod and why. */
export class ConnectivityNotReadyError extends WeftError {
  static readonly code = 'WEFT_ERR_CONNTEST_NOT_READY';
  constructor(problem: string) {
    super(ConnectivityNotReadyError.code, `Cannot run the connectivity test: ${problem}`);
  }
}

/** A test pod's image cannot be pulled (ErrImagePull, ImagePullBackOff, InvalidImageName, ErrImageNeverPull). */
export class ConnectivityImageError extends WeftError {
  static readonly code = 'WEFT_ERR_CONNTEST_IMAGE';
  constructor(problem: string) {
    super(ConnectivityImageError.code, `Cannot run the connectivity test: ${problem}`);
  }
}
