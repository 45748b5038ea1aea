export { UiListenError, UiRequestError, errorCodes } from './errors.js';
export * from './types.js';
export { ServiceMap, VERDICT_COLOURS, type ServiceMapOptions } from './service-map.js';
