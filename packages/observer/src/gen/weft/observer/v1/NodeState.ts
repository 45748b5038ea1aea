// Original file: proto/observer.proto

export const NodeState = {
  NODE_STATE_UNKNOWN: 'NODE_STATE_UNKNOWN',
  NODE_CONNECTED: 'NODE_CONNECTED',
  /**
   * Known but not answering (the relay keeps retrying).
   */
  NODE_UNAVAILABLE: 'NODE_UNAVAILABLE',
  /**
   * Left the cluster; the relay stopped asking it.
   */
  NODE_GONE: 'NODE_GONE',
} as const;

export type NodeState =
  | 'NODE_STATE_UNKNOWN'
  | 0
  | 'NODE_CONNECTED'
  | 1
  /**
   * Known but not answering (the relay keeps retrying).
   */
  | 'NODE_UNAVAILABLE'
  | 2
  /**
   * Left the cluster; the relay stopped asking it.
   */
  | 'NODE_GONE'
  | 3

export type NodeState__Output = typeof NodeState[keyof typeof NodeState]
