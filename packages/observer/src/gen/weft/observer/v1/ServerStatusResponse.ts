// Original file: proto/observer.proto

import type { Long } from '@grpc/proto-loader';

export interface ServerStatusResponse {
  /**
   * Flows in the buffer now, and its capacity (a relay: the sums over its nodes).
   */
  'numFlows'?: (number | string | Long);
  'maxFlows'?: (number | string | Long);
  /**
   * Flows ever added to the buffer.
   */
  'seenFlows'?: (number | string | Long);
  'uptimeNs'?: (number | string | Long);
  /**
   * Events the kernel could not queue (ring buffer full), and flows dropped for slow stream readers.
   */
  'lostBpfEvents'?: (number | string | Long);
  'lostStreamFlows'?: (number | string | Long);
  /**
   * A relay: the nodes it reaches and those it does not, by "cluster/node".
   */
  'numConnectedNodes'?: (number);
  'numUnavailableNodes'?: (number);
  'unavailableNodes'?: (string)[];
  'version'?: (string);
  /**
   * Flows per second added over the last minute.
   */
  'flowsRate'?: (number | string);
}

export interface ServerStatusResponse__Output {
  /**
   * Flows in the buffer now, and its capacity (a relay: the sums over its nodes).
   */
  'numFlows': (number);
  'maxFlows': (number);
  /**
   * Flows ever added to the buffer.
   */
  'seenFlows': (number);
  'uptimeNs': (number);
  /**
   * Events the kernel could not queue (ring buffer full), and flows dropped for slow stream readers.
   */
  'lostBpfEvents': (number);
  'lostStreamFlows': (number);
  /**
   * A relay: the nodes it reaches and those it does not, by "cluster/node".
   */
  'numConnectedNodes': (number);
  'numUnavailableNodes': (number);
  'unavailableNodes': (string)[];
  'version': (string);
  /**
   * Flows per second added over the last minute.
   */
  'flowsRate': (number);
}
