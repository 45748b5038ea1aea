export { ResourceStore, resourceKey, RESOURCES_ROOT, type ApplyResult } from './store.js';
export { validateResource } from './validate.js';
export { parseYamlDocuments, type SourceDocument } from './yaml.js';
export { loadResourceFiles } from './load.js';
export { InvalidResourceError, ResourceNotFoundError, errorCodes } from './errors.js';
export { resourceRef, NAMESPACED, API_VERSION, type Resource, type ResourceKind, type Metadata, type PodSpec, type ServiceSpec, type ServicePort, type ContainerSpec } from './types.js';
