// Original file: proto/observer.proto


export interface GetNodesRequest {
  /**
   * Only this cluster's nodes (what a relay asks another cluster's relay).
   */
  'localOnly'?: (boolean);
}

export interface GetNodesRequest__Output {
  /**
   * Only this cluster's nodes (what a relay asks another cluster's relay).
   */
  'localOnly': (boolean);
}
