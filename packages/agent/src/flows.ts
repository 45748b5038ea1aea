/**
 * Flows: datapath events made into the observer's Flow (@weft/observer) with what the agent knows:
 * pods, namespaces, identities' labels and clusters, Services, the deciding policy. The agent keeps
 * them in its LocalObserver and serves them over gRPC (observer.ts).
 *
 * A label list is computed once per identity's label set (they never change for an id) and shared
 * by every flow of that identity, so enrichment costs no allocation per label.
 */
import { CLUSTER_LABEL, type LabelSet } from '@weft/identity';
import { dropReasonName, FlowFlag, ObservationPoint, Verdict } from '@weft/datapath';
import { tcpFlagsFromByte, type Flow, type FlowEndpoint, type FlowService, type TrafficDirection } from '@weft/observer';
import type { FlowSample } from './datapath-port.js';

export interface FlowContext {
  cluster: string;
  node: string;
  /** Wall-clock time of CLOCK_MONOTONIC's zero, in nanoseconds. */
  bootTimeNs: bigint;
  podByIp(ip: string): { namespace: string; pod: string } | undefined;
  labelsOf(identity: number): LabelSet | undefined;
  ruleName(id: number): string | undefined;
  /** The Service with this frontend (ClusterIP and port), if any. */
  serviceAt?(ip: string, port: number, protocol: string): { namespace: string; name: string } | undefined;
}

const PROTOCOLS: Record<number, string> = { 1: 'ICMP', 6: 'TCP', 17: 'UDP', 132: 'SCTP' };
const VERDICTS = Verdict as Record<number, Flow['verdict']>;
const POINTS = ObservationPoint as Record<number, string>;

const labelCache = new WeakMap<LabelSet, { labels: string[]; cluster: string }>();

function identityView(set: LabelSet | undefined): { labels: string[]; cluster: string } {
  if (!set) return { labels: [], cluster: '' };
  let v = labelCache.get(set);
  if (!v) {
    v = { labels: set.toStrings(), cluster: set.get(CLUSTER_LABEL) ?? '' };
    labelCache.set(set, v);
  }
  return v;
}

export function enrich(s: FlowSample, ctx: FlowContext): Flow {
  const side = (ip: string, port: number, identity: number): FlowEndpoint => {
    const pod = ctx.podByIp(ip);
    const { labels, cluster } = identityView(ctx.labelsOf(identity));
    return { ip, port, identity, namespace: pod?.namespace ?? '', pod: pod?.pod ?? '', labels, cluster };
  };
  const point = POINTS[s.point] ?? `unknown-${s.point}`;
  const isReply = (s.flags & FlowFlag.reply) !== 0;
  const totalNs = ctx.bootTimeNs + s.timestampNs;
  let service: FlowService | null = null;
  if (s.serviceAddr) {
    const svc = ctx.serviceAt?.(s.serviceAddr, s.servicePort, PROTOCOLS[s.protocol] ?? '');
    service = { namespace: svc?.namespace ?? '', name: svc?.name ?? '', ip: s.serviceAddr, port: s.servicePort };
  }
  return {
    time: { seconds: Number(totalNs / 1_000_000_000n), nanos: Number(totalNs % 1_000_000_000n) },
    cluster: ctx.cluster,
    node: ctx.node,
    verdict: VERDICTS[s.verdict] ?? 'VERDICT_UNKNOWN',
    dropReason: s.dropReason ? dropReasonName(s.dropReason) : '',
    dropReasonCode: s.dropReason,
    point,
    trafficDirection: direction(point, isReply),
    protocol: PROTOCOLS[s.protocol] ?? String(s.protocol),
    source: side(s.saddr, s.sport, s.srcIdentity),
    destination: side(s.daddr, s.dport, s.dstIdentity),
    destinationService: service,
    tcpFlags: s.protocol === 6 ? tcpFlagsFromByte(s.tcpFlags) : null,
    isReply,
    newConnection: (s.flags & FlowFlag.new) !== 0,
    encrypted: (s.flags & FlowFlag.encrypted) !== 0,
    tunneled: (s.flags & FlowFlag.tunneled) !== 0,
    related: (s.flags & FlowFlag.related) !== 0,
    policy: (s.ruleId && ctx.ruleName(s.ruleId)) || '',
    length: s.length,
  };
}

/** The connection's direction as the local endpoint sees it: a reply travels against it. */
function direction(point: string, isReply: boolean): TrafficDirection {
  const d: TrafficDirection = point === 'from-endpoint' ? 'EGRESS' : point === 'to-endpoint' || point === 'from-overlay' || point === 'from-underlay' ? 'INGRESS' : 'TRAFFIC_DIRECTION_UNKNOWN';
  if (!isReply || d === 'TRAFFIC_DIRECTION_UNKNOWN') return d;
  return d === 'EGRESS' ? 'INGRESS' : 'EGRESS';
}
