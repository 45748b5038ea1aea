/**
 * LocalObserver: an agent's own flows. A bounded ring of the last flows (FlowRing) and the live
 * followers of GetFlows; counts what was seen and what was lost, and where: events the kernel could
 * not queue (the datapath's counter, read on demand) and flows a slow reader's stream could not
 * take (counted by the server that dropped them).
 */
import type { FlowSink, ObserverBackend } from './backend.js';
import { historyLimit } from './backend.js';
import type { FlowPredicate } from './filter.js';
import { FlowRing, isDeferred, type StoredFlow } from './ring.js';
import { compareTimestamps } from './time.js';
import type { Flow, GetFlowsRequest, ObserverNode, ServerStatus, Timestamp } from './types.js';

export interface LocalObserverOptions {
  cluster: string;
  node: string;
  /** Flows kept for GetFlows' history (default 10,000). */
  capacity?: number;
  version?: string;
  /** Events the datapath could not queue (its ring buffer was full), ever. */
  lostBpfEvents?: () => Promise<number>;
  /** The cluster's nodes and where their observers listen, for a relay's peer discovery. */
  nodes?: () => ObserverNode[];
}

interface Follower {
  match: FlowPredicate;
  sink: FlowSink;
  until: Timestamp | null;
  done: () => void;
}

export class LocalObserver implements ObserverBackend {
  readonly ring: FlowRing;
  private readonly followers = new Set<Follower>();
  private readonly startedNs = process.hrtime.bigint();
  /** Flows a stream's reader could not take (server.ts counts them here). */
  lostStreamFlows = 0;
  /** seen at the start of each of the last 60 seconds, for flows_rate. */
  private readonly rate: Array<{ at: number; seen: number }> = [];

  constructor(private readonly options: LocalObserverOptions) {
    this.ring = new FlowRing(options.capacity ?? 10_000);
  }

  /** A flow that happened: kept, and handed to the followers (built now only if there are any). */
  add(stored: StoredFlow): void {
    this.ring.push(stored);
    if ((this.ring.seen & 1023) === 0) this.sampleRate();
    if (this.followers.size === 0) return;
    const flow = isDeferred(stored) ? stored.build() : stored;
    for (const f of this.followers) {
      if (f.until && compareTimestamps(flow.time, f.until) > 0) {
        f.done();
        continue;
      }
      if (f.match(flow)) f.sink.flow(flow);
    }
  }

  async getFlows(request: GetFlowsRequest, match: FlowPredicate, sink: FlowSink, signal: AbortSignal): Promise<void> {
    const { since, until } = request;
    const inTime = (f: Flow): boolean => (!since || compareTimestamps(f.time, since) >= 0) && (!until || compareTimestamps(f.time, until) <= 0);
    const limit = historyLimit(request);
    if (limit > 0) for (const f of this.ring.last(limit, (f) => inTime(f) && match(f))) sink.flow(f);
    if (!request.follow || signal.aborted) return;
    await new Promise<void>((resolve) => {
      const follower: Follower = { match, sink, until, done: () => finish() };
      const finish = (): void => {
        this.followers.delete(follower);
        signal.removeEventListener('abort', finish);
        resolve();
      };
      this.followers.add(follower);
      signal.addEventListener('abort', finish, { once: true });
    });
  }

  async serverStatus(): Promise<ServerStatus> {
    this.sampleRate();
    const first = this.rate[0];
    const last = this.rate[this.rate.length - 1];
    const seconds = first && last ? (last.at - first.at) / 1000 : 0;
    return {
      numFlows: this.ring.size,
      maxFlows: this.ring.capacity,
      seenFlows: this.ring.seen,
      uptimeNs: Number(process.hrtime.bigint() - this.startedNs),
      lostBpfEvents: (await this.options.lostBpfEvents?.()) ?? 0,
      lostStreamFlows: this.lostStreamFlows,
      numConnectedNodes: 1,
      numUnavailableNodes: 0,
      unavailableNodes: [],
      version: this.options.version ?? '',
      flowsRate: seconds > 0 ? (last!.seen - first!.seen) / seconds : 0,
    };
  }

  async getNodes(): Promise<ObserverNode[]> {
    const { cluster, node } = this.options;
    const nodes = this.options.nodes?.() ?? [];
    if (nodes.some((n) => n.name === node)) return nodes;
    return [{ name: node, cluster, address: '', state: 'NODE_CONNECTED', version: this.options.version ?? '', uptimeNs: 0, numFlows: this.ring.size, maxFlows: this.ring.capacity, seenFlows: this.ring.seen, error: '' }, ...nodes];
  }

  /** Ends every follower's stream (the agent is stopping). */
  close(): void {
    for (const f of [...this.followers]) f.done();
  }

  get followerCount(): number {
    return this.followers.size;
  }

  private sampleRate(): void {
    const now = Date.now();
    const last = this.rate[this.rate.length - 1];
    if (!last || now - last.at >= 1000) this.rate.push({ at: now, seen: this.ring.seen });
    while (this.rate.length > 1 && now - this.rate[0]!.at > 60_000) this.rate.shift();
  }
}
