// Original file: proto/observer.proto

import type { Node as _weft_observer_v1_Node, Node__Output as _weft_observer_v1_Node__Output } from '../../../weft/observer/v1/Node';

export interface GetNodesResponse {
  'nodes'?: (_weft_observer_v1_Node)[];
}

export interface GetNodesResponse__Output {
  'nodes': (_weft_observer_v1_Node__Output)[];
}
