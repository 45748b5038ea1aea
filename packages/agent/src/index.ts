export { Agent } from './agent.js';
export { loadAgentConfig, validateAgentConfig, podMtu, VXLAN_OVERHEAD, type AgentConfig, type RoutingMode } from './config.js';
export { AgentClient, AgentApiError, AgentUnreachableError } from './api.js';
export type { Datapath, IpcacheUpsert, EndpointProgram, PolicyMapEntry, FlowSample } from './datapath-port.js';
export { POD_GATEWAY, netnsName, type Endpoint, type CniArgs } from './endpoint-manager.js';
export { podNetnsName } from './pod-runtime.js';
export { flowMatches, type Flow, type FlowFilter } from './flows.js';
export { nodeKey, endpointKey, NODES_PREFIX, ENDPOINTS_PREFIX, type NodeRecord, type EndpointRecord } from './state.js';
export { AgentConfigError, IpamExhaustedError, CniRequestError, EndpointNotFoundError, errorCodes } from './errors.js';
