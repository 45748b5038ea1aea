export { MetricsServer, type MetricsServerOptions } from './server.js';
export { createRegistry, gaugeOf, counterOf, METRIC_PREFIX, Registry, Counter, Gauge, Histogram, type RegistryOptions, type Labels, type Samples, type Reader } from './registry.js';
export { parseListen, type ListenAddress } from './listen.js';
export { MetricsListenError, MetricsConfigError, ExpositionError, errorCodes } from './errors.js';
