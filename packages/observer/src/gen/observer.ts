import type * as grpc from '@grpc/grpc-js';
import type { EnumTypeDefinition, MessageTypeDefinition } from '@grpc/proto-loader';

import type { Timestamp as _google_protobuf_Timestamp, Timestamp__Output as _google_protobuf_Timestamp__Output } from './google/protobuf/Timestamp';
import type { Endpoint as _weft_observer_v1_Endpoint, Endpoint__Output as _weft_observer_v1_Endpoint__Output } from './weft/observer/v1/Endpoint';
import type { Flow as _weft_observer_v1_Flow, Flow__Output as _weft_observer_v1_Flow__Output } from './weft/observer/v1/Flow';
import type { FlowFilter as _weft_observer_v1_FlowFilter, FlowFilter__Output as _weft_observer_v1_FlowFilter__Output } from './weft/observer/v1/FlowFilter';
import type { GetFlowBatchesResponse as _weft_observer_v1_GetFlowBatchesResponse, GetFlowBatchesResponse__Output as _weft_observer_v1_GetFlowBatchesResponse__Output } from './weft/observer/v1/GetFlowBatchesResponse';
import type { GetFlowsRequest as _weft_observer_v1_GetFlowsRequest, GetFlowsRequest__Output as _weft_observer_v1_GetFlowsRequest__Output } from './weft/observer/v1/GetFlowsRequest';
import type { GetFlowsResponse as _weft_observer_v1_GetFlowsResponse, GetFlowsResponse__Output as _weft_observer_v1_GetFlowsResponse__Output } from './weft/observer/v1/GetFlowsResponse';
import type { GetNodesRequest as _weft_observer_v1_GetNodesRequest, GetNodesRequest__Output as _weft_observer_v1_GetNodesRequest__Output } from './weft/observer/v1/GetNodesRequest';
import type { GetNodesResponse as _weft_observer_v1_GetNodesResponse, GetNodesResponse__Output as _weft_observer_v1_GetNodesResponse__Output } from './weft/observer/v1/GetNodesResponse';
import type { LostEvent as _weft_observer_v1_LostEvent, LostEvent__Output as _weft_observer_v1_LostEvent__Output } from './weft/observer/v1/LostEvent';
import type { Node as _weft_observer_v1_Node, Node__Output as _weft_observer_v1_Node__Output } from './weft/observer/v1/Node';
import type { NodeStatusEvent as _weft_observer_v1_NodeStatusEvent, NodeStatusEvent__Output as _weft_observer_v1_NodeStatusEvent__Output } from './weft/observer/v1/NodeStatusEvent';
import type { ObserverClient as _weft_observer_v1_ObserverClient, ObserverDefinition as _weft_observer_v1_ObserverDefinition } from './weft/observer/v1/Observer';
import type { ServerStatusRequest as _weft_observer_v1_ServerStatusRequest, ServerStatusRequest__Output as _weft_observer_v1_ServerStatusRequest__Output } from './weft/observer/v1/ServerStatusRequest';
import type { ServerStatusResponse as _weft_observer_v1_ServerStatusResponse, ServerStatusResponse__Output as _weft_observer_v1_ServerStatusResponse__Output } from './weft/observer/v1/ServerStatusResponse';
import type { Service as _weft_observer_v1_Service, Service__Output as _weft_observer_v1_Service__Output } from './weft/observer/v1/Service';
import type { TCPFlags as _weft_observer_v1_TCPFlags, TCPFlags__Output as _weft_observer_v1_TCPFlags__Output } from './weft/observer/v1/TCPFlags';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  google: {
    protobuf: {
      Timestamp: MessageTypeDefinition<_google_protobuf_Timestamp, _google_protobuf_Timestamp__Output>
    }
  }
  weft: {
    observer: {
      v1: {
        Endpoint: MessageTypeDefinition<_weft_observer_v1_Endpoint, _weft_observer_v1_Endpoint__Output>
        Flow: MessageTypeDefinition<_weft_observer_v1_Flow, _weft_observer_v1_Flow__Output>
        FlowFilter: MessageTypeDefinition<_weft_observer_v1_FlowFilter, _weft_observer_v1_FlowFilter__Output>
        GetFlowBatchesResponse: MessageTypeDefinition<_weft_observer_v1_GetFlowBatchesResponse, _weft_observer_v1_GetFlowBatchesResponse__Output>
        GetFlowsRequest: MessageTypeDefinition<_weft_observer_v1_GetFlowsRequest, _weft_observer_v1_GetFlowsRequest__Output>
        GetFlowsResponse: MessageTypeDefinition<_weft_observer_v1_GetFlowsResponse, _weft_observer_v1_GetFlowsResponse__Output>
        GetNodesRequest: MessageTypeDefinition<_weft_observer_v1_GetNodesRequest, _weft_observer_v1_GetNodesRequest__Output>
        GetNodesResponse: MessageTypeDefinition<_weft_observer_v1_GetNodesResponse, _weft_observer_v1_GetNodesResponse__Output>
        LostEvent: MessageTypeDefinition<_weft_observer_v1_LostEvent, _weft_observer_v1_LostEvent__Output>
        LostEventSource: EnumTypeDefinition
        Node: MessageTypeDefinition<_weft_observer_v1_Node, _weft_observer_v1_Node__Output>
        NodeState: EnumTypeDefinition
        NodeStatusEvent: MessageTypeDefinition<_weft_observer_v1_NodeStatusEvent, _weft_observer_v1_NodeStatusEvent__Output>
        Observer: SubtypeConstructor<typeof grpc.Client, _weft_observer_v1_ObserverClient> & { service: _weft_observer_v1_ObserverDefinition }
        ServerStatusRequest: MessageTypeDefinition<_weft_observer_v1_ServerStatusRequest, _weft_observer_v1_ServerStatusRequest__Output>
        ServerStatusResponse: MessageTypeDefinition<_weft_observer_v1_ServerStatusResponse, _weft_observer_v1_ServerStatusResponse__Output>
        Service: MessageTypeDefinition<_weft_observer_v1_Service, _weft_observer_v1_Service__Output>
        TCPFlags: MessageTypeDefinition<_weft_observer_v1_TCPFlags, _weft_observer_v1_TCPFlags__Output>
        TrafficDirection: EnumTypeDefinition
        Verdict: EnumTypeDefinition
      }
    }
  }
}

