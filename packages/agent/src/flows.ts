/**
 * Flows: datapath events enriched with what the agent knows (pods,
 * namespaces, labels, identities, rule names), kept in a bounded ring for
 * `weft observe` and streamed to followers.
 */
import { dropReasonName, FlowFlag, ObservationPoint, Verdict } from '@weft/datapath';
import type { LabelSet } from '@weft/identity';
import type { FlowSample } from './datapath-port.js';

export interface FlowEndpoint {
  ip: string;
  port: number;
  identity: number;
  namespace?: string;
  pod?: string;
  labels: string[];
}

export interface Flow {
  time: string;
  node: string;
  verdict: string;
  dropReason?: string;
  point: string;
  protocol: string;
  source: FlowEndpoint;
  destination: FlowEndpoint;
  isReply: boolean;
  newConnection: boolean;
  /** Sent to another node through WireGuard (known for new connections at the sender). */
  encrypted: boolean;
  /**
   * Tunnel traffic: sent into or received from the VXLAN/Geneve overlay. On a `from-underlay` drop
   * (a tunnel packet refused before decapsulation: TUNNEL_SOURCE_NOT_NODE, UNENCRYPTED_INGRESS,
   * SOURCE_NOT_FROM_OWNER) it means the addresses are the tunnel packet's own (who sent it to which
   * node), not those of the pods it carried.
   */
  tunneled: boolean;
  /**
   * An ICMP error (unreachable, frag-needed, time exceeded, parameter problem) let through because
   * the packet it quotes belongs to a tracked connection of the endpoint; `rule` is that connection's.
   */
  related: boolean;
  rule?: string;
  length: number;
}

export interface FlowContext {
  node: string;
  bootTimeMs: number;
  podByIp(ip: string): { namespace: string; pod: string } | undefined;
  labelsOf(identity: number): LabelSet | undefined;
  ruleName(id: number): string | undefined;
}

const PROTOCOLS: Record<number, string> = { 1: 'ICMP', 6: 'TCP', 17: 'UDP', 132: 'SCTP' };

export function enrich(s: FlowSample, ctx: FlowContext): Flow {
  const side = (ip: string, port: number, identity: number): FlowEndpoint => {
    const pod = ctx.podByIp(ip);
    const ep: FlowEndpoint = { ip, port, identity, labels: ctx.labelsOf(identity)?.toStrings() ?? [] };
    if (pod) {
      ep.namespace = pod.namespace;
      ep.pod = pod.pod;
    }
    return ep;
  };
  const flow: Flow = {
    time: new Date(ctx.bootTimeMs + Number(s.timestampNs / 1_000_000n)).toISOString(),
    node: ctx.node,
    verdict: (Verdict as Record<number, string>)[s.verdict] ?? `UNKNOWN_${s.verdict}`,
    point: (ObservationPoint as Record<number, string>)[s.point] ?? `unknown-${s.point}`,
    protocol: PROTOCOLS[s.protocol] ?? String(s.protocol),
    source: side(s.saddr, s.sport, s.srcIdentity),
    destination: side(s.daddr, s.dport, s.dstIdentity),
    isReply: (s.flags & FlowFlag.reply) !== 0,
    newConnection: (s.flags & FlowFlag.new) !== 0,
    encrypted: (s.flags & FlowFlag.encrypted) !== 0,
    tunneled: (s.flags & FlowFlag.tunneled) !== 0,
    related: (s.flags & FlowFlag.related) !== 0,
    length: s.length,
  };
  if (s.dropReason) flow.dropReason = dropReasonName(s.dropReason);
  const rule = s.ruleId ? ctx.ruleName(s.ruleId) : undefined;
  if (rule) flow.rule = rule;
  return flow;
}

export interface FlowFilter {
  pod?: string;
  namespace?: string;
  label?: string;
  verdict?: string;
  identity?: number;
}

function sideMatches(e: FlowEndpoint, f: FlowFilter): boolean {
  if (f.namespace && e.namespace !== f.namespace) return false;
  if (f.pod) {
    const [ns, name] = f.pod.includes('/') ? f.pod.split('/', 2) : [undefined, f.pod];
    if (e.pod !== name || (ns !== undefined && e.namespace !== ns)) return false;
  }
  if (f.label && !e.labels.some((l) => l === f.label || l === `k8s:${f.label}`)) return false;
  if (f.identity !== undefined && e.identity !== f.identity) return false;
  return true;
}

export function flowMatches(flow: Flow, f: FlowFilter): boolean {
  if (f.verdict && flow.verdict !== f.verdict.toUpperCase()) return false;
  const sideFilter = { ...f };
  delete sideFilter.verdict;
  if (Object.values(sideFilter).every((v) => v === undefined)) return true;
  return sideMatches(flow.source, sideFilter) || sideMatches(flow.destination, sideFilter);
}

/** The last `capacity` flows, plus live followers. */
export class FlowLog {
  private readonly ring: Flow[] = [];
  private readonly followers = new Set<(f: Flow) => void>();
  constructor(private readonly capacity = 10_000) {}

  add(flow: Flow): void {
    this.ring.push(flow);
    if (this.ring.length > this.capacity) this.ring.shift();
    for (const f of this.followers) f(flow);
  }

  recent(filter: FlowFilter, limit: number): Flow[] {
    return this.ring.filter((f) => flowMatches(f, filter)).slice(-limit);
  }

  follow(listener: (f: Flow) => void): () => void {
    this.followers.add(listener);
    return () => this.followers.delete(listener);
  }
}
