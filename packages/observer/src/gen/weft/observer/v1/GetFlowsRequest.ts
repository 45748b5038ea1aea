// Original file: proto/observer.proto

import type { Timestamp as _google_protobuf_Timestamp, Timestamp__Output as _google_protobuf_Timestamp__Output } from '../../../google/protobuf/Timestamp';
import type { FlowFilter as _weft_observer_v1_FlowFilter, FlowFilter__Output as _weft_observer_v1_FlowFilter__Output } from '../../../weft/observer/v1/FlowFilter';
import type { Long } from '@grpc/proto-loader';

export interface GetFlowsRequest {
  /**
   * The last `number` flows of the buffer (0: none with follow, else a default of 20 at the server).
   */
  'number'?: (number | string | Long);
  'follow'?: (boolean);
  'since'?: (_google_protobuf_Timestamp | null);
  'until'?: (_google_protobuf_Timestamp | null);
  'allow'?: (_weft_observer_v1_FlowFilter)[];
  'deny'?: (_weft_observer_v1_FlowFilter)[];
  /**
   * Only this cluster's own nodes: what a relay asks another cluster's relay, so no flow is fetched
   * twice and no request travels in a circle.
   */
  'localOnly'?: (boolean);
}

export interface GetFlowsRequest__Output {
  /**
   * The last `number` flows of the buffer (0: none with follow, else a default of 20 at the server).
   */
  'number': (number);
  'follow': (boolean);
  'since': (_google_protobuf_Timestamp__Output | null);
  'until': (_google_protobuf_Timestamp__Output | null);
  'allow': (_weft_observer_v1_FlowFilter__Output)[];
  'deny': (_weft_observer_v1_FlowFilter__Output)[];
  /**
   * Only this cluster's own nodes: what a relay asks another cluster's relay, so no flow is fetched
   * twice and no request travels in a circle.
   */
  'localOnly': (boolean);
}
