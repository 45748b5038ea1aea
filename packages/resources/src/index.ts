export { ResourceStore, resourceKey, clusterIPKey, RESOURCES_ROOT, CLUSTER_IP_INDEX, type ApplyResult, type ResourceStoreOptions } from './store.js';
export { SERVICE_CIDR } from './cluster-ip.js';
export { validateResource, type ValidateOptions } from './validate.js';
export type { ResourceSource, ResourceWatch, ResourceWatchHandler, ServiceEndpointsHandler } from './source.js';
export { parseYamlDocuments, stringifyYamlDocuments, type SourceDocument } from './yaml.js';
export { loadResourceFiles } from './load.js';
export { InvalidResourceError, ResourceNotFoundError, ClusterIPInUseError, ClusterIPExhaustedError, ResourceConflictError, errorCodes } from './errors.js';
export { resourceRef, NAMESPACED, API_VERSION, type Resource, type ResourceKind, type Metadata, type PodSpec, type ServiceSpec, type ServicePort, type ContainerSpec, type ContainerPort } from './types.js';
