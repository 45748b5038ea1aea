// Original file: proto/observer.proto


/**
 * The Service a packet was sent to, before its address was translated to a backend's.
 */
export interface Service {
  'namespace'?: (string);
  'name'?: (string);
  'ip'?: (string);
  'port'?: (number);
}

/**
 * The Service a packet was sent to, before its address was translated to a backend's.
 */
export interface Service__Output {
  'namespace': (string);
  'name': (string);
  'ip': (string);
  'port': (number);
}
