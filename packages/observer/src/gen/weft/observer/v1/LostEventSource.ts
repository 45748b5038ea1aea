// Original file: proto/observer.proto

export const LostEventSource = {
  LOST_EVENT_SOURCE_UNKNOWN: 'LOST_EVENT_SOURCE_UNKNOWN',
  /**
   * The datapath's ring buffer was full: the kernel dropped the event (never the packet).
   */
  BPF_RING_BUFFER: 'BPF_RING_BUFFER',
  /**
   * This stream's reader was slower than the flows: the server's queue for it overflowed.
   */
  STREAM_QUEUE: 'STREAM_QUEUE',
  /**
   * A relay's queue for one node's stream overflowed.
   */
  RELAY_QUEUE: 'RELAY_QUEUE',
  /**
   * The flow exporter's queue for its file overflowed (the disk did not keep up) or a write failed:
   * what an export file's lostEvents line reports.
   */
  EXPORT_QUEUE: 'EXPORT_QUEUE',
} as const;

export type LostEventSource =
  | 'LOST_EVENT_SOURCE_UNKNOWN'
  | 0
  /**
   * The datapath's ring buffer was full: the kernel dropped the event (never the packet).
   */
  | 'BPF_RING_BUFFER'
  | 1
  /**
   * This stream's reader was slower than the flows: the server's queue for it overflowed.
   */
  | 'STREAM_QUEUE'
  | 2
  /**
   * A relay's queue for one node's stream overflowed.
   */
  | 'RELAY_QUEUE'
  | 3
  /**
   * The flow exporter's queue for its file overflowed (the disk did not keep up) or a write failed:
   * what an export file's lostEvents line reports.
   */
  | 'EXPORT_QUEUE'
  | 4

export type LostEventSource__Output = typeof LostEventSource[keyof typeof LostEventSource]
