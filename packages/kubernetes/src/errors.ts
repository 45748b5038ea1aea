/** Errors of the Kubernetes source. */
import { WeftError } from '@weft/common';

/** No usable kubeconfig: not in a pod (no service account) and no kubeconfig path, or the file is unreadable. */
export class KubernetesConfigError extends WeftError {
  static readonly code = 'WEFT_ERR_KUBERNETES_CONFIG';
  constructor(problem: string, options?: { cause?: unknown }) {
    super(KubernetesConfigError.code, `Cannot configure the Kubernetes client: ${problem}`, options);
  }
}

/**
 * The API server refused a request or could not be reached. `status` is the HTTP status (0 when
 * no answer came), `reason` the Status reason (NotFound, Expired, Forbidden, ...) when it sent one.
 */
export class KubernetesApiError extends WeftError {
  static readonly code = 'WEFT_ERR_KUBERNETES_API';
  constructor(
    action: string,
    readonly status: number,
    readonly reason: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(KubernetesApiError.code, `Cannot ${action}: ${status === 0 ? 'no answer from the API server' : `HTTP ${status}${reason ? ` ${reason}` : ''}`}${detail ? `: ${detail}` : ''}`, options);
  }
}

export const errorCodes = [KubernetesConfigError.code, KubernetesApiError.code] as const;
