/** A complete flow for tests and benchmarks: every field set, the given ones overriding. */
import type { Flow, FlowEndpoint } from './types.js';

export function makeFlow(over: Partial<Omit<Flow, 'source' | 'destination'>> & { source?: Partial<FlowEndpoint>; destination?: Partial<FlowEndpoint> } = {}): Flow {
  const ep = (e: Partial<FlowEndpoint> = {}): FlowEndpoint => ({ ip: '10.101.1.5', port: 0, identity: 0, namespace: '', pod: '', labels: [], cluster: '', ...e });
  const { source, destination, ...rest } = over;
  return {
    time: { seconds: 1_700_000_000, nanos: 0 },
    cluster: 'c1',
    node: 'c1-node1',
    verdict: 'FORWARDED',
    dropReason: '',
    dropReasonCode: 0,
    point: 'from-endpoint',
    trafficDirection: 'EGRESS',
    protocol: 'TCP',
    destinationService: null,
    tcpFlags: null,
    isReply: false,
    newConnection: true,
    encrypted: false,
    tunneled: false,
    related: false,
    policy: '',
    length: 60,
    ...rest,
    source: ep(source),
    destination: ep(destination),
  };
}
