// Original file: proto/observer.proto


export interface ServerStatusRequest {
  /**
   * Only this cluster's nodes (what a relay asks another cluster's relay).
   */
  'localOnly'?: (boolean);
}

export interface ServerStatusRequest__Output {
  /**
   * Only this cluster's nodes (what a relay asks another cluster's relay).
   */
  'localOnly': (boolean);
}
