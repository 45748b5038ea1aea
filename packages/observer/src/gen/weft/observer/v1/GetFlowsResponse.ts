// Original file: proto/observer.proto

import type { Flow as _weft_observer_v1_Flow, Flow__Output as _weft_observer_v1_Flow__Output } from '../../../weft/observer/v1/Flow';
import type { LostEvent as _weft_observer_v1_LostEvent, LostEvent__Output as _weft_observer_v1_LostEvent__Output } from '../../../weft/observer/v1/LostEvent';
import type { NodeStatusEvent as _weft_observer_v1_NodeStatusEvent, NodeStatusEvent__Output as _weft_observer_v1_NodeStatusEvent__Output } from '../../../weft/observer/v1/NodeStatusEvent';
import type { Timestamp as _google_protobuf_Timestamp, Timestamp__Output as _google_protobuf_Timestamp__Output } from '../../../google/protobuf/Timestamp';

export interface GetFlowsResponse {
  'flow'?: (_weft_observer_v1_Flow | null);
  'lostEvents'?: (_weft_observer_v1_LostEvent | null);
  'nodeStatus'?: (_weft_observer_v1_NodeStatusEvent | null);
  'cluster'?: (string);
  'node'?: (string);
  'time'?: (_google_protobuf_Timestamp | null);
  'responseTypes'?: "flow"|"lostEvents"|"nodeStatus";
}

export interface GetFlowsResponse__Output {
  'flow'?: (_weft_observer_v1_Flow__Output | null);
  'lostEvents'?: (_weft_observer_v1_LostEvent__Output | null);
  'nodeStatus'?: (_weft_observer_v1_NodeStatusEvent__Output | null);
  'cluster': (string);
  'node': (string);
  'time': (_google_protobuf_Timestamp__Output | null);
  'responseTypes'?: "flow"|"lostEvents"|"nodeStatus";
}
