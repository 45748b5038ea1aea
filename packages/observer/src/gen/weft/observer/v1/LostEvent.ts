// Original file: proto/observer.proto

import type { LostEventSource as _weft_observer_v1_LostEventSource, LostEventSource__Output as _weft_observer_v1_LostEventSource__Output } from '../../../weft/observer/v1/LostEventSource';
import type { Long } from '@grpc/proto-loader';

export interface LostEvent {
  'source'?: (_weft_observer_v1_LostEventSource);
  'numEventsLost'?: (number | string | Long);
  'cluster'?: (string);
  'node'?: (string);
}

export interface LostEvent__Output {
  'source': (_weft_observer_v1_LostEventSource__Output);
  'numEventsLost': (number);
  'cluster': (string);
  'node': (string);
}
