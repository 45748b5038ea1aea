// Original file: proto/observer.proto

import type { GetFlowsResponse as _weft_observer_v1_GetFlowsResponse, GetFlowsResponse__Output as _weft_observer_v1_GetFlowsResponse__Output } from '../../../weft/observer/v1/GetFlowsResponse';

export interface GetFlowBatchesResponse {
  'responses'?: (_weft_observer_v1_GetFlowsResponse)[];
}

export interface GetFlowBatchesResponse__Output {
  'responses': (_weft_observer_v1_GetFlowsResponse__Output)[];
}
