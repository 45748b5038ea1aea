// Original file: proto/observer.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { GetFlowBatchesResponse as _weft_observer_v1_GetFlowBatchesResponse, GetFlowBatchesResponse__Output as _weft_observer_v1_GetFlowBatchesResponse__Output } from '../../../weft/observer/v1/GetFlowBatchesResponse';
import type { GetFlowsRequest as _weft_observer_v1_GetFlowsRequest, GetFlowsRequest__Output as _weft_observer_v1_GetFlowsRequest__Output } from '../../../weft/observer/v1/GetFlowsRequest';
import type { GetFlowsResponse as _weft_observer_v1_GetFlowsResponse, GetFlowsResponse__Output as _weft_observer_v1_GetFlowsResponse__Output } from '../../../weft/observer/v1/GetFlowsResponse';
import type { GetNodesRequest as _weft_observer_v1_GetNodesRequest, GetNodesRequest__Output as _weft_observer_v1_GetNodesRequest__Output } from '../../../weft/observer/v1/GetNodesRequest';
import type { GetNodesResponse as _weft_observer_v1_GetNodesResponse, GetNodesResponse__Output as _weft_observer_v1_GetNodesResponse__Output } from '../../../weft/observer/v1/GetNodesResponse';
import type { ServerStatusRequest as _weft_observer_v1_ServerStatusRequest, ServerStatusRequest__Output as _weft_observer_v1_ServerStatusRequest__Output } from '../../../weft/observer/v1/ServerStatusRequest';
import type { ServerStatusResponse as _weft_observer_v1_ServerStatusResponse, ServerStatusResponse__Output as _weft_observer_v1_ServerStatusResponse__Output } from '../../../weft/observer/v1/ServerStatusResponse';

export interface ObserverClient extends grpc.Client {
  /**
   * The same responses as GetFlows, many to a message: what the relay and `weft observe` use.
   * One gRPC message per flow costs more than the flow (grpc-js writes a stream's messages one
   * after another, each after the last left); a batch carries what accumulated meanwhile.
   */
  GetFlowBatches(argument: _weft_observer_v1_GetFlowsRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_weft_observer_v1_GetFlowBatchesResponse__Output>;
  GetFlowBatches(argument: _weft_observer_v1_GetFlowsRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_weft_observer_v1_GetFlowBatchesResponse__Output>;
  /**
   * The same responses as GetFlows, many to a message: what the relay and `weft observe` use.
   * One gRPC message per flow costs more than the flow (grpc-js writes a stream's messages one
   * after another, each after the last left); a batch carries what accumulated meanwhile.
   */
  getFlowBatches(argument: _weft_observer_v1_GetFlowsRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_weft_observer_v1_GetFlowBatchesResponse__Output>;
  getFlowBatches(argument: _weft_observer_v1_GetFlowsRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_weft_observer_v1_GetFlowBatchesResponse__Output>;
  
  /**
   * Flows from the buffer (the last `number`, or those since/until), then, with follow, live ones.
   */
  GetFlows(argument: _weft_observer_v1_GetFlowsRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_weft_observer_v1_GetFlowsResponse__Output>;
  GetFlows(argument: _weft_observer_v1_GetFlowsRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_weft_observer_v1_GetFlowsResponse__Output>;
  /**
   * Flows from the buffer (the last `number`, or those since/until), then, with follow, live ones.
   */
  getFlows(argument: _weft_observer_v1_GetFlowsRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_weft_observer_v1_GetFlowsResponse__Output>;
  getFlows(argument: _weft_observer_v1_GetFlowsRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_weft_observer_v1_GetFlowsResponse__Output>;
  
  /**
   * The nodes behind this server: an agent its cluster's nodes (the relay's peer list), a relay
   * each node of its own and connected clusters with its connection state.
   */
  GetNodes(argument: _weft_observer_v1_GetNodesRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_weft_observer_v1_GetNodesResponse__Output>): grpc.ClientUnaryCall;
  GetNodes(argument: _weft_observer_v1_GetNodesRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_weft_observer_v1_GetNodesResponse__Output>): grpc.ClientUnaryCall;
  GetNodes(argument: _weft_observer_v1_GetNodesRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_weft_observer_v1_GetNodesResponse__Output>): grpc.ClientUnaryCall;
  GetNodes(argument: _weft_observer_v1_GetNodesRequest, callback: grpc.requestCallback<_weft_observer_v1_GetNodesResponse__Output>): grpc.ClientUnaryCall;
  /**
   * The nodes behind this server: an agent its cluster's nodes (the relay's peer list), a relay
   * each node of its own and connected clusters with its connection state.
   */
  getNodes(argument: _weft_observer_v1_GetNodesRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_weft_observer_v1_GetNodesResponse__Output>): grpc.ClientUnaryCall;
  getNodes(argument: _weft_observer_v1_GetNodesRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_weft_observer_v1_GetNodesResponse__Output>): grpc.ClientUnaryCall;
  getNodes(argument: _weft_observer_v1_GetNodesRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_weft_observer_v1_GetNodesResponse__Output>): grpc.ClientUnaryCall;
  getNodes(argument: _weft_observer_v1_GetNodesRequest, callback: grpc.requestCallback<_weft_observer_v1_GetNodesResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Buffer size, flows seen and lost, uptime; a relay adds up its nodes and names those it cannot reach.
   */
  ServerStatus(argument: _weft_observer_v1_ServerStatusRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_weft_observer_v1_ServerStatusResponse__Output>): grpc.ClientUnaryCall;
  ServerStatus(argument: _weft_observer_v1_ServerStatusRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_weft_observer_v1_ServerStatusResponse__Output>): grpc.ClientUnaryCall;
  ServerStatus(argument: _weft_observer_v1_ServerStatusRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_weft_observer_v1_ServerStatusResponse__Output>): grpc.ClientUnaryCall;
  ServerStatus(argument: _weft_observer_v1_ServerStatusRequest, callback: grpc.requestCallback<_weft_observer_v1_ServerStatusResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Buffer size, flows seen and lost, uptime; a relay adds up its nodes and names those it cannot reach.
   */
  serverStatus(argument: _weft_observer_v1_ServerStatusRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_weft_observer_v1_ServerStatusResponse__Output>): grpc.ClientUnaryCall;
  serverStatus(argument: _weft_observer_v1_ServerStatusRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_weft_observer_v1_ServerStatusResponse__Output>): grpc.ClientUnaryCall;
  serverStatus(argument: _weft_observer_v1_ServerStatusRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_weft_observer_v1_ServerStatusResponse__Output>): grpc.ClientUnaryCall;
  serverStatus(argument: _weft_observer_v1_ServerStatusRequest, callback: grpc.requestCallback<_weft_observer_v1_ServerStatusResponse__Output>): grpc.ClientUnaryCall;
  
}

export interface ObserverHandlers extends grpc.UntypedServiceImplementation {
  /**
   * The same responses as GetFlows, many to a message: what the relay and `weft observe` use.
   * One gRPC message per flow costs more than the flow (grpc-js writes a stream's messages one
   * after another, each after the last left); a batch carries what accumulated meanwhile.
   */
  GetFlowBatches: grpc.handleServerStreamingCall<_weft_observer_v1_GetFlowsRequest__Output, _weft_observer_v1_GetFlowBatchesResponse>;
  
  /**
   * Flows from the buffer (the last `number`, or those since/until), then, with follow, live ones.
   */
  GetFlows: grpc.handleServerStreamingCall<_weft_observer_v1_GetFlowsRequest__Output, _weft_observer_v1_GetFlowsResponse>;
  
  /**
   * The nodes behind this server: an agent its cluster's nodes (the relay's peer list), a relay
   * each node of its own and connected clusters with its connection state.
   */
  GetNodes: grpc.handleUnaryCall<_weft_observer_v1_GetNodesRequest__Output, _weft_observer_v1_GetNodesResponse>;
  
  /**
   * Buffer size, flows seen and lost, uptime; a relay adds up its nodes and names those it cannot reach.
   */
  ServerStatus: grpc.handleUnaryCall<_weft_observer_v1_ServerStatusRequest__Output, _weft_observer_v1_ServerStatusResponse>;
  
}

export interface ObserverDefinition extends grpc.ServiceDefinition {
  GetFlowBatches: MethodDefinition<_weft_observer_v1_GetFlowsRequest, _weft_observer_v1_GetFlowBatchesResponse, _weft_observer_v1_GetFlowsRequest__Output, _weft_observer_v1_GetFlowBatchesResponse__Output>
  GetFlows: MethodDefinition<_weft_observer_v1_GetFlowsRequest, _weft_observer_v1_GetFlowsResponse, _weft_observer_v1_GetFlowsRequest__Output, _weft_observer_v1_GetFlowsResponse__Output>
  GetNodes: MethodDefinition<_weft_observer_v1_GetNodesRequest, _weft_observer_v1_GetNodesResponse, _weft_observer_v1_GetNodesRequest__Output, _weft_observer_v1_GetNodesResponse__Output>
  ServerStatus: MethodDefinition<_weft_observer_v1_ServerStatusRequest, _weft_observer_v1_ServerStatusResponse, _weft_observer_v1_ServerStatusRequest__Output, _weft_observer_v1_ServerStatusResponse__Output>
}
