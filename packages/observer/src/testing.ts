/** Flows for tests and benchmarks. */
import { seededRandom } from '@weft/common';
import { tcpFlagsFromByte } from './filter.js';
import type { Flow, FlowEndpoint } from './types.js';

/** A complete flow: every field set, the given ones overriding. */
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

/** The strings JSON has to escape: quotes, backslashes, control characters, non-ASCII, lone surrogates. */
const ESCAPED_WORDS = ['', 'web-7f9c', 'k8s:app=web', 'quote"d', 'back\\slash', 'tab\there', 'new\nline', '\u0000\u001f\u007f', 'ünïcode/名前', 'emoji 😀', 'lone \ud800', 'x'.repeat(300)];

/** Random complete flows, with the strings JSON has to escape. */
export function randomFlows(seed: number, count: number): Flow[] {
  return Array.from({ length: count }, randomFlowSource(seed));
}

/** A maker of random complete flows from `seed`: strings from `words`, numbers at varint and width boundaries. */
export function randomFlowSource(seed: number, words: readonly string[] = ESCAPED_WORDS): () => Flow {
  const random = seededRandom(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const word = (): string => pick(words);
  const num = (): number => pick([0, 1, 127, 128, 65535, 4_294_967_295, Math.floor(random() * 2 ** 32)]);
  return () =>
    makeFlow({
      time: pick([null, { seconds: 0, nanos: 0 }, { seconds: 1_790_000_000, nanos: Math.floor(random() * 1e9) }, { seconds: 1_790_000_001, nanos: 100_000_000 }]),
      cluster: word(), node: word(), verdict: pick(['VERDICT_UNKNOWN', 'FORWARDED', 'DROPPED', 'AUDIT'] as const), dropReason: word(), dropReasonCode: num(), point: word(),
      trafficDirection: pick(['TRAFFIC_DIRECTION_UNKNOWN', 'INGRESS', 'EGRESS'] as const), protocol: word(),
      source: { ip: word(), port: num() & 0xffff, identity: num(), namespace: word(), pod: word(), labels: Array.from({ length: Math.floor(random() * 4) }, word), cluster: word() },
      destination: { ip: word(), port: num() & 0xffff, identity: num(), namespace: word(), pod: word(), labels: [word()], cluster: word() },
      destinationService: pick([null, { namespace: word(), name: word(), ip: word(), port: num() & 0xffff }]),
      tcpFlags: pick([null, tcpFlagsFromByte(Math.floor(random() * 256))]),
      isReply: random() < 0.5, newConnection: random() < 0.5, encrypted: random() < 0.5, tunneled: random() < 0.5, related: random() < 0.5, policy: word(), length: num(),
    });
}
