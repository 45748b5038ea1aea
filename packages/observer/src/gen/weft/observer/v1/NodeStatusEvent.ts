// Original file: proto/observer.proto

import type { NodeState as _weft_observer_v1_NodeState, NodeState__Output as _weft_observer_v1_NodeState__Output } from '../../../weft/observer/v1/NodeState';

/**
 * A node that joined, became unavailable or left while a relay stream followed.
 */
export interface NodeStatusEvent {
  'state'?: (_weft_observer_v1_NodeState);
  'cluster'?: (string);
  'node'?: (string);
  'message'?: (string);
}

/**
 * A node that joined, became unavailable or left while a relay stream followed.
 */
export interface NodeStatusEvent__Output {
  'state': (_weft_observer_v1_NodeState__Output);
  'cluster': (string);
  'node': (string);
  'message': (string);
}
