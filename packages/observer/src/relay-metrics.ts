/**
 * The relay's Prometheus metrics (docs/metrics.md, "## relay"), served by @weft/metrics'
 * MetricsServer on the relay configuration's `metrics.listen`. Everything is read when scraped from
 * counts the relay and its server keep anyway: its links to nodes and connected clusters (Hubble
 * Relay's `hubble_relay_pool_peer_connection_status`), the streams and calls it serves, the flows in
 * and out, and what slow readers lost. A subpath of its own (`@weft/observer/relay-metrics`), so
 * `weft observe` does not load prom-client.
 */
import type { Logger } from '@weft/common';
import { counterOf, createRegistry, gaugeOf, MetricsServer, type ListenAddress, type Registry } from '@weft/metrics';
import type { Relay } from './relay.js';
import type { ObserverCallStats } from './server.js';

const KINDS = ['node', 'cluster'] as const;
const STATES = { NODE_CONNECTED: 'connected', NODE_UNAVAILABLE: 'unavailable', NODE_STATE_UNKNOWN: 'unknown' } as const;

export interface RelayMetricsOptions {
  cluster: string;
  relay: Pick<Relay, 'linkStates' | 'bufferedFlows' | 'discoveryError' | 'unavailable' | 'receivedFlows' | 'lostStreamFlows'>;
  /** The relay's ObserverServer's stats. */
  calls: ObserverCallStats;
  listen: string;
  log: Logger;
}

export class RelayMetrics {
  readonly registry: Registry;
  private readonly server: MetricsServer;

  constructor(o: RelayMetricsOptions) {
    const r = (this.registry = createRegistry({ cluster: o.cluster }));
    const { relay, calls } = o;
    gaugeOf(r, {
      name: 'weft_relay_peers',
      help: 'Links of the relay by kind (node: an agent of this cluster; cluster: a connected cluster\'s relay, through its clustermesh-apiserver) and state (connected, unavailable, unknown: not checked yet).',
      labelNames: ['kind', 'state'],
      read: () => {
        const counts = new Map<string, number>();
        for (const kind of KINDS) for (const state of Object.values(STATES)) counts.set(`${kind} ${state}`, 0);
        for (const l of relay.linkStates()) {
          const key = `${l.remote ? 'cluster' : 'node'} ${STATES[l.state as keyof typeof STATES] ?? 'unknown'}`;
          counts.set(key, counts.get(key)! + 1);
        }
        return [...counts].map(([key, n]) => {
          const [kind, state] = key.split(' ');
          return [{ kind: kind!, state: state! }, n] as const;
        });
      },
    });
    gaugeOf(r, { name: 'weft_relay_node_discovery_failing', help: '1 while the node list cannot be read from any peer agent (the nodes known before are kept), else 0.', read: () => [[{}, relay.discoveryError ? 1 : 0]] });
    counterOf(r, { name: 'weft_relay_peer_unavailable_total', help: 'Times a link stopped answering or could not be reached, by kind (node, cluster).', labelNames: ['kind'], read: () => KINDS.map((kind) => [{ kind }, relay.unavailable[kind]] as const) });
    gaugeOf(r, { name: 'weft_relay_streams', help: 'GetFlows and GetFlowBatches streams served now, by mode (follow: live flows; history: stored flows only).', labelNames: ['mode'], read: () => [[{ mode: 'follow' }, calls.following], [{ mode: 'history' }, calls.reading]] });
    counterOf(r, {
      name: 'weft_relay_requests_total',
      help: 'Calls of the Observer API that finished, by method and gRPC status code (a stream the client cancelled is CANCELLED).',
      labelNames: ['method', 'code'],
      read: () => [...calls.finished].map(([key, n]) => {
        const [method, code] = key.split(' ');
        return [{ method: method!, code: code! }, n] as const;
      }),
    });
    counterOf(r, { name: 'weft_relay_received_flows_total', help: 'Flows received from the nodes and the connected clusters\' relays.', read: () => [[{}, relay.receivedFlows]] });
    counterOf(r, { name: 'weft_relay_sent_responses_total', help: 'Responses sent to clients, over every stream: flows, and the lost-flows and node events among them.', read: () => [[{}, calls.sent]] });
    counterOf(r, { name: 'weft_relay_lost_flows_total', help: 'Flows dropped because a client read more slowly than they came (each such client is told how many with a LostEvent).', read: () => [[{}, relay.lostStreamFlows]] });
    gaugeOf(r, { name: 'weft_relay_sort_buffered_flows', help: 'Live flows waiting in the sort windows of the streams that follow, for earlier flows of other nodes.', read: () => [[{}, relay.bufferedFlows()]] });
    this.server = new MetricsServer({ registry: r, listen: o.listen, log: o.log });
  }

  start(): Promise<ListenAddress> {
    return this.server.start();
  }

  stop(): Promise<void> {
    return this.server.stop();
  }
}
