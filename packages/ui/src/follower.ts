/**
 * FlowFollower: keeps following the flows of one or more observers (the cluster's relay, or each
 * agent when there is no relay) for as long as it runs. Each source has its own loop: ask for the
 * flows since the last one received (the first time: since `sinceMs`), check the server with
 * ServerStatus (an answer means following; the relay's count of nodes reached and unreachable comes
 * with it), and after a failure or an ended stream try again after the shared backoff. A restarted
 * relay is followed again from where the map left off, without counting a flow twice.
 *
 * Every state change goes through transition(), which allows only the moves listed in FROM and
 * logs each with its cause.
 */
import { Backoff, sleep, type BackoffOptions, type Logger } from '@weft/common';
import { compareTimestamps, timestampFromMs, timestampMs, type Flow, type GetFlowsRequestInput, type GetFlowsResponse, type ServerStatus, type Timestamp } from '@weft/observer';
import type { FollowState, FollowStatus } from './types.js';

/** What the follower needs of an observer client (@weft/observer's ObserverClient is one). */
export interface FlowSource {
  /** Streams responses until the server ends the stream or `signal` aborts (then resolves); rejects when it fails. */
  getFlows(request: GetFlowsRequestInput, onResponse: (r: GetFlowsResponse) => void, signal?: AbortSignal): Promise<void>;
  serverStatus(): Promise<ServerStatus>;
}

export interface FlowFollowerOptions {
  sources: ReadonlyArray<{ name: string; client: FlowSource }>;
  /** The first request asks for flows since this time (epoch ms). */
  sinceMs: number;
  onFlow: (flow: Flow) => void;
  /** Every state change and every ServerStatus answer. */
  onStatus?: (status: FollowStatus[]) => void;
  /** Between attempts (default 200 ms growing to 5 s, with jitter). */
  backoff?: BackoffOptions;
  /** Between ServerStatus checks while following (default 5 s). */
  statusEveryMs?: number;
  log: Logger;
  now?: () => number;
}

/** The states each state may be entered from. */
const FROM: Readonly<Record<FollowState, readonly FollowState[]>> = {
  idle: [],
  connecting: ['idle', 'retrying'],
  following: ['connecting'],
  retrying: ['connecting', 'following'],
  stopped: ['idle', 'connecting', 'following', 'retrying'],
};

interface Link {
  name: string;
  client: FlowSource;
  status: FollowStatus;
  /** The last flow's time: the next attempt asks from here and skips what it already had. */
  last: Timestamp | undefined;
}

export class FlowFollower {
  private readonly links: Link[];
  private readonly stopping = new AbortController();
  private runs: Promise<void>[] = [];
  private readonly now: () => number;

  constructor(private readonly options: FlowFollowerOptions) {
    this.now = options.now ?? Date.now;
    this.links = options.sources.map(({ name, client }) => ({
      name,
      client,
      last: undefined,
      status: { source: name, state: 'idle', error: '', sinceMs: this.now(), retryAtMs: 0, flows: 0, lostFlows: 0, lastFlowMs: 0, connectedNodes: 0, unavailableNodes: [] },
    }));
  }

  start(): void {
    this.runs = this.links.map((link) => this.run(link));
  }

  /** Ends every stream and loop; resolves when they have ended. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await Promise.all(this.runs);
  }

  status(): FollowStatus[] {
    return this.links.map((l) => ({ ...l.status, unavailableNodes: [...l.status.unavailableNodes] }));
  }

  private async run(link: Link): Promise<void> {
    const backoff = new Backoff({ initialMs: 200, maxMs: 5000, ...this.options.backoff });
    let cause = 'started';
    while (!this.stopping.signal.aborted) {
      this.transition(link, 'connecting', cause);
      const attempt = new AbortController();
      const onStop = (): void => attempt.abort();
      this.stopping.signal.addEventListener('abort', onStop, { once: true });
      const checks = this.checkStatus(link, attempt, backoff);
      try {
        const since = link.last ?? timestampFromMs(this.options.sinceMs);
        await link.client.getFlows({ follow: true, since }, (r) => this.receive(link, r), attempt.signal);
        cause = attempt.signal.aborted ? String(attempt.signal.reason ?? 'stopped') : 'the server ended the stream';
      } catch (err) {
        cause = (err as Error).message;
      }
      attempt.abort();
      this.stopping.signal.removeEventListener('abort', onStop);
      await checks;
      if (this.stopping.signal.aborted) break;
      const delay = backoff.next();
      link.status.retryAtMs = this.now() + delay;
      this.transition(link, 'retrying', cause);
      try {
        await sleep(delay, this.stopping.signal);
      } catch {
        break;
      }
      cause = 'retrying';
    }
    this.transition(link, 'stopped', 'stopped');
  }

  /**
   * ServerStatus now and every `statusEveryMs` while the attempt lasts: the first answer means the
   * stream is being served; a failure ends the attempt (a stream from a server that stopped
   * answering may otherwise wait for ever).
   */
  private async checkStatus(link: Link, attempt: AbortController, backoff: Backoff): Promise<void> {
    while (!attempt.signal.aborted) {
      try {
        const s = await link.client.serverStatus();
        if (attempt.signal.aborted) return;
        link.status.connectedNodes = s.numConnectedNodes;
        link.status.unavailableNodes = [...s.unavailableNodes];
        if (link.status.state === 'connecting') {
          backoff.reset();
          this.transition(link, 'following', 'the server answered');
        } else this.emit();
      } catch (err) {
        if (!attempt.signal.aborted) attempt.abort(`ServerStatus failed: ${(err as Error).message}`);
        return;
      }
      await sleep(this.options.statusEveryMs ?? 5000, attempt.signal).catch(() => undefined);
    }
  }

  private receive(link: Link, r: GetFlowsResponse): void {
    if (r.lostEvents) {
      link.status.lostFlows += Number(r.lostEvents.numEventsLost);
      return;
    }
    const flow = r.flow;
    if (!flow) return; // a node's state: the next ServerStatus says it
    // After a reconnect the server sends again what came since the last flow, that one included.
    if (link.last && compareTimestamps(flow.time, link.last) <= 0) return;
    link.last = flow.time ?? link.last;
    link.status.flows++;
    link.status.lastFlowMs = timestampMs(flow.time);
    this.options.onFlow(flow);
  }

  private transition(link: Link, to: FollowState, cause: string): void {
    const from = link.status.state;
    if (from === to) return;
    if (!FROM[to].includes(from)) {
      this.options.log.error({ peer: link.name, from, to, cause }, 'flow source: state change not allowed, ignored');
      return;
    }
    link.status.state = to;
    link.status.sinceMs = this.now();
    if (to === 'following') link.status.error = '';
    if (to === 'retrying') link.status.error = cause;
    if (to !== 'retrying') link.status.retryAtMs = 0;
    const level = to === 'retrying' ? 'warn' : to === 'connecting' ? 'debug' : 'info';
    this.options.log[level]({ peer: link.name, from, to, cause }, `flow source ${to}`);
    this.emit();
  }

  private emit(): void {
    this.options.onStatus?.(this.status());
  }
}
