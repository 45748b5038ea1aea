/**
 * Flows: datapath events made into the observer's Flow (@weft/observer) with what the agent knows:
 * pods, namespaces, identities' labels and clusters, Services, the deciding policy. The agent keeps
 * them in its LocalObserver (as CapturedFlows, built when read) and serves them over gRPC.
 *
 * A label list is computed once per identity's label set (they never change for an id) and shared
 * by every flow of that identity, so enrichment costs no allocation per label.
 */
import { CLUSTER_LABEL, type LabelSet } from '@weft/identity';
import { dropReasonName, FlowFlag, ObservationPoint, Verdict } from '@weft/datapath';
import { tcpFlagsFromByte, type DeferredFlow, type Flow, type FlowEndpoint, type FlowService, type TrafficDirection } from '@weft/observer';
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

/** A flow's pod, from the agent's state when the flow happened. */
type Pod = { namespace: string; pod: string } | undefined;

/**
 * A flow as it happened: the sample and what the agent knew then (the pods behind the addresses,
 * the identities' labels, the rule's name, the Service), looked up now because all of these
 * change; its Flow is built when first read (FlowRing) and kept. Most flows are overwritten
 * unread: building each as it came (objects, strings, bigint arithmetic) was two thirds of the
 * per-event work on the host; the lookups are a few map reads.
 */
export class CapturedFlow implements DeferredFlow {
  private flow: Flow | undefined;
  private readonly srcPod: Pod;
  private readonly dstPod: Pod;
  private readonly srcLabels: LabelSet | undefined;
  private readonly dstLabels: LabelSet | undefined;
  private readonly policy: string;
  private readonly service: { namespace: string; name: string } | undefined;

  constructor(
    private readonly s: FlowSample,
    private readonly ctx: FlowContext,
  ) {
    this.srcPod = ctx.podByIp(s.saddr);
    this.dstPod = ctx.podByIp(s.daddr);
    this.srcLabels = ctx.labelsOf(s.srcIdentity);
    this.dstLabels = ctx.labelsOf(s.dstIdentity);
    this.policy = (s.ruleId && ctx.ruleName(s.ruleId)) || '';
    this.service = s.serviceAddr ? ctx.serviceAt?.(s.serviceAddr, s.servicePort, PROTOCOLS[s.protocol] ?? '') : undefined;
  }

  build(): Flow {
    this.flow ??= this.toFlow();
    return this.flow;
  }

  private toFlow(): Flow {
    const { s, ctx } = this;
    const side = (ip: string, port: number, identity: number, pod: Pod, set: LabelSet | undefined): FlowEndpoint => {
      const { labels, cluster } = identityView(set);
      return { ip, port, identity, namespace: pod?.namespace ?? '', pod: pod?.pod ?? '', labels, cluster };
    };
    const point = POINTS[s.point] ?? `unknown-${s.point}`;
    const isReply = (s.flags & FlowFlag.reply) !== 0;
    const totalNs = ctx.bootTimeNs + s.timestampNs;
    const service: FlowService | null = s.serviceAddr
      ? { namespace: this.service?.namespace ?? '', name: this.service?.name ?? '', ip: s.serviceAddr, port: s.servicePort }
      : null;
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
      source: side(s.saddr, s.sport, s.srcIdentity, this.srcPod, this.srcLabels),
      destination: side(s.daddr, s.dport, s.dstIdentity, this.dstPod, this.dstLabels),
      destinationService: service,
      tcpFlags: s.protocol === 6 ? tcpFlagsFromByte(s.tcpFlags) : null,
      isReply,
      newConnection: (s.flags & FlowFlag.new) !== 0,
      encrypted: (s.flags & FlowFlag.encrypted) !== 0,
      tunneled: (s.flags & FlowFlag.tunneled) !== 0,
      related: (s.flags & FlowFlag.related) !== 0,
      policy: this.policy,
      length: s.length,
    };
  }
}

/** The Flow of a sample, with what the agent knows now. */
export function enrich(s: FlowSample, ctx: FlowContext): Flow {
  return new CapturedFlow(s, ctx).build();
}

/** The connection's direction as the local endpoint sees it: a reply travels against it. */
function direction(point: string, isReply: boolean): TrafficDirection {
  const d: TrafficDirection = point === 'from-endpoint' ? 'EGRESS' : point === 'to-endpoint' || point === 'from-overlay' || point === 'from-underlay' ? 'INGRESS' : 'TRAFFIC_DIRECTION_UNKNOWN';
  if (!isReply || d === 'TRAFFIC_DIRECTION_UNKNOWN') return d;
  return d === 'EGRESS' ? 'INGRESS' : 'EGRESS';
}
