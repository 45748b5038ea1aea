export { WeftError, AbortedError, errorCodes } from './errors.js';
export { Backoff, type BackoffOptions } from './backoff.js';
export { retry, type RetryPolicy, type RetryOptions } from './retry.js';
export { sleep, throwIfAborted } from './sleep.js';
export { createLogger, silentLogger, type Logger, type LogContext } from './logger.js';
export { Coalescer } from './coalescer.js';
export { healthReport, type HealthCheck, type HealthReport } from './health.js';
export { parseIpv4, ipv4ToInt, formatIpv4, parseCidr, formatCidr, cidrContains, prefixMask, type Cidr } from './ipv4.js';
export { seededRandom } from './seeded-random.js';
