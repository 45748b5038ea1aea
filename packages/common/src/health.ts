/**
 * The shape of a health answer, shared by the agent (`GET /v1/healthz`), the
 * clustermesh-apiserver (`Mesh/Health`) and `weft ... health`: named checks,
 * and ready exactly when every check is ok. Leaf module.
 */

export interface HealthCheck {
  name: string;
  ok: boolean;
  /** What was seen, for people: why not ok, or what ok rests on. */
  detail: string;
}

export interface HealthReport {
  ready: boolean;
  checks: HealthCheck[];
}

export function healthReport(checks: HealthCheck[]): HealthReport {
  return { ready: checks.every((c) => c.ok), checks };
}
