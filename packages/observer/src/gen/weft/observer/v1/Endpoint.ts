// Original file: proto/observer.proto


export interface Endpoint {
  'ip'?: (string);
  'port'?: (number);
  /**
   * The security identity (cluster id in the top bits for a remote cluster's).
   */
  'identity'?: (number);
  /**
   * Empty when the address is not a pod Weft knows.
   */
  'namespace'?: (string);
  'pod'?: (string);
  /**
   * The identity's labels, "source:key=value" (k8s:app=web, reserved:world, cidr:10.0.0.0/8).
   */
  'labels'?: (string)[];
  /**
   * The cluster the identity belongs to (its weft.io/cluster label); empty for reserved ones.
   */
  'cluster'?: (string);
}

export interface Endpoint__Output {
  'ip': (string);
  'port': (number);
  /**
   * The security identity (cluster id in the top bits for a remote cluster's).
   */
  'identity': (number);
  /**
   * Empty when the address is not a pod Weft knows.
   */
  'namespace': (string);
  'pod': (string);
  /**
   * The identity's labels, "source:key=value" (k8s:app=web, reserved:world, cidr:10.0.0.0/8).
   */
  'labels': (string)[];
  /**
   * The cluster the identity belongs to (its weft.io/cluster label); empty for reserved ones.
   */
  'cluster': (string);
}
