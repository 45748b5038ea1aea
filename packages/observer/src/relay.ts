/**
 * Relay: one Observer API over every node of a cluster, and over the relays of the clusters
 * connected to it. It learns the nodes from an agent's GetNodes (`discover`), keeps a client per
 * node, checks each on every refresh, and serves GetFlows by asking every reachable node with the
 * same request (filters apply where the flows are) and merging the answers by time: history
 * sorted whole, live flows through a short sort window (TimeMerger).
 *
 * Nodes come and go: a node that stops answering is reported (state, error, a NodeStatusEvent to
 * followers) and asked again when it answers; a node that leaves the cluster is dropped; a node that
 * joins while a stream follows is followed from then on. A connected cluster's relay is asked with
 * `localOnly`, so each flow is fetched once and no request goes around in a circle.
 */
import type { Logger } from '@weft/common';
import { historyLimit, type FlowSink, type ObserverBackend } from './backend.js';
import type { ObserverClient } from './client.js';
import type { FlowPredicate } from './filter.js';
import { TimeMerger } from './merge.js';
import { compareTimestamps } from './time.js';
import type { EncodedFlow } from './codec.js';
import type { GetFlowsRequest, GetFlowsResponse, NodeState, ObserverNode, ServerStatus } from './types.js';

export interface RemoteRelay {
  cluster: string;
  /** Where it is reached (its clustermesh-apiserver), to notice a changed address. */
  address: string;
  dial: () => ObserverClient;
}

export interface RelayOptions {
  cluster: string;
  /** The cluster's nodes with their observer addresses (an agent's GetNodes). */
  discover: () => Promise<ObserverNode[]>;
  /** A client of a node's observer, made with `encodedFlows` (the relay passes flows on as they came). */
  dial: (node: ObserverNode) => ObserverClient;
  /** The connected clusters' relays, read again on every refresh. */
  remotes?: () => RemoteRelay[];
  /** Between checks of the node list and of each node (default 10 s). */
  refreshMs?: number;
  /** How long a live flow waits for earlier ones from other nodes (default 200 ms). */
  sortWindowMs?: number;
  version?: string;
  log: Logger;
}

/** A node of this cluster, or (node '') a connected cluster's relay. */
interface Link {
  key: string;
  cluster: string;
  node: string;
  address: string;
  client: ObserverClient;
  state: NodeState;
  error: string;
  status: ServerStatus | undefined;
  remote: boolean;
}

interface Follow {
  request: GetFlowsRequest;
  sink: FlowSink;
  merger: TimeMerger<EncodedFlow>;
  streams: Map<string, AbortController>;
  signal: AbortSignal;
}

const PROBE_TIMEOUT_MS = 5000;

export class Relay implements ObserverBackend {
  private readonly links = new Map<string, Link>();
  private readonly follows = new Set<Follow>();
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  private readonly startedNs = process.hrtime.bigint();
  /** The last node list's failure, for ServerStatus and the log. */
  discoveryError = '';
  lostStreamFlows = 0;
  /** Flows received from nodes and connected clusters, for the metrics. */
  receivedFlows = 0;
  /** Times a link stopped answering (it was connected, or never was), by kind, for the metrics. */
  readonly unavailable = { node: 0, cluster: 0 };

  constructor(private readonly options: RelayOptions) {}

  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.options.refreshMs ?? 10_000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    for (const f of this.follows) for (const s of f.streams.values()) s.abort();
    for (const l of this.links.values()) l.client.close();
    this.links.clear();
  }

  /** Reads the node list and the remotes again and checks every link; one at a time. */
  refresh(): Promise<void> {
    this.refreshing ??= this.doRefresh().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async doRefresh(): Promise<void> {
    const o = this.options;
    const want = new Map<string, { cluster: string; node: string; address: string; dial: () => ObserverClient; remote: boolean }>();
    try {
      for (const n of await o.discover()) {
        if (!n.address) continue;
        want.set(`${n.cluster}/${n.name}`, { cluster: n.cluster, node: n.name, address: n.address, dial: () => o.dial(n), remote: false });
      }
      if (this.discoveryError) o.log.info('node list read again');
      this.discoveryError = '';
    } catch (err) {
      // Keep the nodes we know: a peer agent restarting must not make the relay forget the cluster.
      if (!this.discoveryError) o.log.warn({ err: (err as Error).message }, 'cannot read the node list; keeping the nodes known');
      this.discoveryError = (err as Error).message;
      for (const l of this.links.values()) if (!l.remote) want.set(l.key, { cluster: l.cluster, node: l.node, address: l.address, dial: () => l.client, remote: false });
    }
    for (const r of o.remotes?.() ?? []) {
      if (r.cluster === o.cluster) continue;
      want.set(`${r.cluster}/*`, { cluster: r.cluster, node: '', address: r.address, dial: r.dial, remote: true });
    }
    for (const [key, l] of this.links) {
      const w = want.get(key);
      if (w && w.address === l.address) continue;
      this.links.delete(key);
      l.client.close();
      this.transition(l, 'NODE_GONE', w ? `address changed to ${w.address}` : 'left the cluster');
    }
    for (const [key, w] of want) {
      if (this.links.has(key)) continue;
      const link: Link = { key, cluster: w.cluster, node: w.node, address: w.address, client: w.dial(), state: 'NODE_STATE_UNKNOWN', error: '', status: undefined, remote: w.remote };
      this.links.set(key, link);
    }
    await Promise.all([...this.links.values()].map((l) => this.probe(l)));
  }

  private async probe(l: Link): Promise<void> {
    try {
      l.status = await withTimeout(l.client.serverStatus(true), PROBE_TIMEOUT_MS, `no answer in ${PROBE_TIMEOUT_MS / 1000} s`);
      this.transition(l, 'NODE_CONNECTED', '');
    } catch (err) {
      l.status = undefined;
      this.transition(l, 'NODE_UNAVAILABLE', (err as Error).message);
    }
  }

  /** One place for a link's state changes: logged with the cause, told to every follower. */
  private transition(l: Link, state: NodeState, error: string): void {
    const before = l.state;
    l.state = state;
    l.error = error;
    if (before === state) return;
    const who = { peer: l.remote ? `${l.cluster}/*` : `${l.cluster}/${l.node}`, address: l.address };
    if (state === 'NODE_UNAVAILABLE') this.unavailable[l.remote ? 'cluster' : 'node']++;
    if (state === 'NODE_CONNECTED') this.options.log.info({ ...who, from: before }, l.remote ? 'connected cluster relay reachable' : 'node reachable');
    else this.options.log.warn({ ...who, from: before, to: state, reason: error }, l.remote ? 'connected cluster relay not reachable' : 'node not reachable');
    for (const f of this.follows) {
      if (l.remote && f.request.localOnly) continue;
      f.sink.nodeStatus({ state, cluster: l.cluster, node: l.node, message: error });
      if (state === 'NODE_CONNECTED') this.followLink(f, l, true);
      else f.streams.get(l.key)?.abort();
    }
  }

  /** Every link's kind and state now (the metrics). */
  linkStates(): Array<{ remote: boolean; state: NodeState }> {
    return [...this.links.values()].map((l) => ({ remote: l.remote, state: l.state }));
  }

  /** Flows waiting in the sort windows of the streams that follow. */
  bufferedFlows(): number {
    let n = 0;
    for (const f of this.follows) n += f.merger.size;
    return n;
  }

  private targets(request: GetFlowsRequest): Link[] {
    return [...this.links.values()].filter((l) => !(l.remote && request.localOnly));
  }

  async getFlows(request: GetFlowsRequest, _match: FlowPredicate, sink: FlowSink, signal: AbortSignal): Promise<void> {
    // The filters travel with the request and apply at each node: `_match` would only repeat them.
    const targets = this.targets(request);
    for (const l of targets) if (l.state !== 'NODE_CONNECTED') sink.nodeStatus({ state: l.state === 'NODE_STATE_UNKNOWN' ? 'NODE_UNAVAILABLE' : l.state, cluster: l.cluster, node: l.node, message: l.error || 'not checked yet' });
    const up = targets.filter((l) => l.state === 'NODE_CONNECTED');
    if (!request.follow) return this.history(request, up, sink, signal);
    const follow: Follow = { request, sink, merger: new TimeMerger<EncodedFlow>((f) => sink.encodedFlow(f), this.options.sortWindowMs ?? 200), streams: new Map(), signal };
    this.follows.add(follow);
    for (const l of up) this.followLink(follow, l, false);
    await new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      signal.addEventListener('abort', () => resolve(), { once: true });
    });
    this.follows.delete(follow);
    for (const s of follow.streams.values()) s.abort();
    follow.merger.finish();
  }

  private async history(request: GetFlowsRequest, links: Link[], sink: FlowSink, signal: AbortSignal): Promise<void> {
    const flows: EncodedFlow[] = [];
    await Promise.all(
      links.map((l) =>
        l.client
          .getEncodedFlows(this.forward(request, l), (r) => this.pass(r, sink, (f) => flows.push(f)), signal)
          .catch((err: Error) => {
            sink.nodeStatus({ state: 'NODE_UNAVAILABLE', cluster: l.cluster, node: l.node, message: err.message });
          }),
      ),
    );
    flows.sort((a, b) => compareTimestamps(a.time, b.time));
    const limit = historyLimit(request);
    for (const f of flows.length > limit ? flows.slice(flows.length - limit) : flows) sink.encodedFlow(f);
  }

  /** Starts following one link in one follow (a node that joined: live flows only). */
  private followLink(f: Follow, l: Link, joined: boolean): void {
    if (f.streams.has(l.key) || f.signal.aborted) return;
    const ac = new AbortController();
    f.streams.set(l.key, ac);
    // A connected cluster's relay sends what its own merge let go: up to its window late, and more.
    f.merger.open(l.key, l.remote ? 3 * (this.options.sortWindowMs ?? 200) + 100 : undefined);
    const request = joined ? { ...this.forward(f.request, l), number: 0, since: null } : this.forward(f.request, l);
    l.client
      .getEncodedFlows(request, (r) => this.pass(r, f.sink, (flow) => f.merger.push(flow, l.key)), ac.signal, f.sink.gate)
      .then(
        () => {
          if (!ac.signal.aborted && !f.signal.aborted) f.sink.nodeStatus({ state: 'NODE_UNAVAILABLE', cluster: l.cluster, node: l.node, message: 'its stream ended' });
        },
        (err: Error) => {
          if (!f.signal.aborted) f.sink.nodeStatus({ state: 'NODE_UNAVAILABLE', cluster: l.cluster, node: l.node, message: err.message });
          // The next refresh checks the node; once it answers, transition() follows it again.
          if (l.state === 'NODE_CONNECTED') {
            l.state = 'NODE_UNAVAILABLE';
            this.unavailable[l.remote ? 'cluster' : 'node']++;
          }
        },
      )
      .finally(() => {
        if (f.streams.get(l.key) !== ac) return;
        f.streams.delete(l.key);
        f.merger.end(l.key);
      });
  }

  private forward(request: GetFlowsRequest, l: Link): GetFlowsRequest {
    return l.remote ? { ...request, localOnly: true } : request;
  }

  /** A node's response: flows (left encoded) to `onFlow`, lost and node events straight through. */
  private pass(r: GetFlowsResponse | EncodedFlow, sink: FlowSink, onFlow: (f: EncodedFlow) => void): void {
    if ('encoded' in r) {
      this.receivedFlows++;
      onFlow(r);
    } else if (r.lostEvents) sink.lost(r.lostEvents);
    else if (r.nodeStatus) sink.nodeStatus(r.nodeStatus);
  }

  async serverStatus(localOnly: boolean): Promise<ServerStatus> {
    const links = [...this.links.values()].filter((l) => !(l.remote && localOnly));
    await Promise.all(links.filter((l) => l.state === 'NODE_CONNECTED').map((l) => this.probe(l)));
    const sum: ServerStatus = {
      numFlows: 0, maxFlows: 0, seenFlows: 0, uptimeNs: Number(process.hrtime.bigint() - this.startedNs), lostBpfEvents: 0, lostStreamFlows: this.lostStreamFlows,
      numConnectedNodes: 0, numUnavailableNodes: 0, unavailableNodes: [], version: this.options.version ?? '', flowsRate: 0,
    };
    for (const l of links) {
      const s = l.status;
      if (l.state !== 'NODE_CONNECTED' || !s) {
        sum.numUnavailableNodes += 1;
        sum.unavailableNodes.push(l.remote ? `${l.cluster}/*` : `${l.cluster}/${l.node}`);
        continue;
      }
      sum.numFlows += Number(s.numFlows);
      sum.maxFlows += Number(s.maxFlows);
      sum.seenFlows += Number(s.seenFlows);
      sum.lostBpfEvents += Number(s.lostBpfEvents);
      sum.lostStreamFlows += Number(s.lostStreamFlows);
      sum.flowsRate += s.flowsRate;
      sum.numConnectedNodes += l.remote ? s.numConnectedNodes : 1;
      if (l.remote) {
        sum.numUnavailableNodes += s.numUnavailableNodes;
        sum.unavailableNodes.push(...s.unavailableNodes);
      }
    }
    sum.unavailableNodes.sort();
    return sum;
  }

  async getNodes(localOnly: boolean): Promise<ObserverNode[]> {
    const out: ObserverNode[] = [];
    for (const l of this.links.values()) {
      if (l.remote) {
        if (localOnly) continue;
        try {
          out.push(...(await withTimeout(l.client.getNodes(true), PROBE_TIMEOUT_MS, `no answer in ${PROBE_TIMEOUT_MS / 1000} s`)));
        } catch (err) {
          out.push({ name: '', cluster: l.cluster, address: l.address, state: 'NODE_UNAVAILABLE', version: '', uptimeNs: 0, numFlows: 0, maxFlows: 0, seenFlows: 0, error: (err as Error).message });
        }
        continue;
      }
      const s = l.status;
      out.push({ name: l.node, cluster: l.cluster, address: l.address, state: l.state, version: s?.version ?? '', uptimeNs: Number(s?.uptimeNs ?? 0), numFlows: Number(s?.numFlows ?? 0), maxFlows: Number(s?.maxFlows ?? 0), seenFlows: Number(s?.seenFlows ?? 0), error: l.error });
    }
    return out.sort((a, b) => (a.cluster === b.cluster ? (a.name < b.name ? -1 : 1) : a.cluster < b.cluster ? -1 : 1));
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)))]).finally(() => clearTimeout(timer));
}
