// Original file: proto/observer.proto

import type { NodeState as _weft_observer_v1_NodeState, NodeState__Output as _weft_observer_v1_NodeState__Output } from '../../../weft/observer/v1/NodeState';
import type { Long } from '@grpc/proto-loader';

export interface Node {
  'name'?: (string);
  'cluster'?: (string);
  /**
   * Where the node's observer listens (host:port).
   */
  'address'?: (string);
  'state'?: (_weft_observer_v1_NodeState);
  'version'?: (string);
  'uptimeNs'?: (number | string | Long);
  'numFlows'?: (number | string | Long);
  'maxFlows'?: (number | string | Long);
  'seenFlows'?: (number | string | Long);
  /**
   * Why it is unavailable.
   */
  'error'?: (string);
}

export interface Node__Output {
  'name': (string);
  'cluster': (string);
  /**
   * Where the node's observer listens (host:port).
   */
  'address': (string);
  'state': (_weft_observer_v1_NodeState__Output);
  'version': (string);
  'uptimeNs': (number);
  'numFlows': (number);
  'maxFlows': (number);
  'seenFlows': (number);
  /**
   * Why it is unavailable.
   */
  'error': (string);
}
