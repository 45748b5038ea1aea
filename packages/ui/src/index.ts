export { UiListenError, UiRequestError, errorCodes } from './errors.js';
export * from './types.js';
export { ServiceMap, VERDICT_COLOURS, type ServiceMapOptions } from './service-map.js';
export { FlowFollower, type FlowFollowerOptions, type FlowSource } from './follower.js';
export { ServiceMapServer, isLoopback, parseFilter, type ServiceMapServerOptions } from './server.js';
