/**
 * The observer's data contract, as the generated types (src/gen, from proto/observer.proto) give
 * it: what a server sends and a client receives is always the complete message (`__Output`: every
 * field present, defaults filled in), so code here handles only that shape.
 */
export type { Flow__Output as Flow } from './gen/weft/observer/v1/Flow';
export type { Endpoint__Output as FlowEndpoint } from './gen/weft/observer/v1/Endpoint';
export type { Service__Output as FlowService } from './gen/weft/observer/v1/Service';
export type { TCPFlags__Output as TcpFlags } from './gen/weft/observer/v1/TCPFlags';
export type { FlowFilter as FlowFilterInput, FlowFilter__Output as FlowFilter } from './gen/weft/observer/v1/FlowFilter';
export type { GetFlowsRequest as GetFlowsRequestInput, GetFlowsRequest__Output as GetFlowsRequest } from './gen/weft/observer/v1/GetFlowsRequest';
export type { GetFlowsResponse__Output as GetFlowsResponse } from './gen/weft/observer/v1/GetFlowsResponse';
export type { LostEvent__Output as LostEvent } from './gen/weft/observer/v1/LostEvent';
export type { NodeStatusEvent__Output as NodeStatusEvent } from './gen/weft/observer/v1/NodeStatusEvent';
export type { ServerStatusResponse__Output as ServerStatus } from './gen/weft/observer/v1/ServerStatusResponse';
export type { Node__Output as ObserverNode } from './gen/weft/observer/v1/Node';
export type { Timestamp__Output as Timestamp } from './gen/google/protobuf/Timestamp';
export type { Verdict__Output as Verdict } from './gen/weft/observer/v1/Verdict';
export type { NodeState__Output as NodeState } from './gen/weft/observer/v1/NodeState';
export type { TrafficDirection__Output as TrafficDirection } from './gen/weft/observer/v1/TrafficDirection';
export type { LostEventSource__Output as LostEventSource } from './gen/weft/observer/v1/LostEventSource';

export const TCP_FLAG_NAMES = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR'] as const;
export type TcpFlagName = (typeof TCP_FLAG_NAMES)[number];
export const VERDICTS = ['FORWARDED', 'DROPPED', 'AUDIT'] as const;
