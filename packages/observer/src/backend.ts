/**
 * What serves the Observer API: an agent's buffer of its own flows (LocalObserver) or a relay's
 * fan-in (Relay). The gRPC server (server.ts) turns calls into these and a stream's writes into a
 * FlowSink, so both answer exactly alike.
 */
import type { EncodedFlow } from './codec.js';
import type { FlowPredicate } from './filter.js';
import type { Flow, GetFlowsRequest, LostEvent, NodeStatusEvent, ObserverNode, ServerStatus } from './types.js';

export interface FlowSink {
  flow(flow: Flow): void;
  /** A flow as another server encoded it (a relay passing it on). */
  encodedFlow(flow: EncodedFlow): void;
  lost(event: LostEvent): void;
  nodeStatus(event: NodeStatusEvent): void;
  /** Whether the reader keeps up (a relay stops reading its nodes while it does not). */
  gate?: FlowGate;
}

/**
 * A stream's back pressure, for a producer that can wait: a relay pauses the streams it reads from
 * while its reader's writes are backed up, so it reads no faster than it can write (reading on, one
 * turn of the event loop takes megabytes in and lets a socket buffer out).
 */
export interface FlowGate {
  readonly open: boolean;
  /** Calls `resume` once, when the gate is open again. */
  whenOpen(resume: () => void): void;
}

export interface ObserverBackend {
  /**
   * The flows the request asks for, into `sink`, in time order: the buffer's first, then (follow)
   * live ones until `signal` aborts. Resolves when done; rejects with a FlowFilterError or what
   * made the flows unavailable.
   */
  getFlows(request: GetFlowsRequest, match: FlowPredicate, sink: FlowSink, signal: AbortSignal): Promise<void>;
  /** `localOnly`: only this cluster's nodes (a relay leaves out connected clusters). */
  serverStatus(localOnly: boolean): Promise<ServerStatus>;
  getNodes(localOnly: boolean): Promise<ObserverNode[]>;
}

/** How many buffered flows a request gets when it names neither a number nor a time nor follow (Hubble's default). */
export const DEFAULT_LAST = 20;

/** The number of buffered flows a request asks for. */
export function historyLimit(request: GetFlowsRequest): number {
  if (request.number > 0) return request.number;
  if (request.since) return Number.MAX_SAFE_INTEGER;
  return request.follow ? 0 : DEFAULT_LAST;
}
