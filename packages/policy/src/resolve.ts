/**
 * Policy resolution: from policies and the identities the node knows, the
 * exact entries of one endpoint's policy map. Pure and synchronous, so it is
 * tested without a kernel and rerun whenever a policy, an identity or the
 * endpoint changes (the agent diffs the result against the map).
 *
 * Semantics (those of Kubernetes and Cilium users):
 *  - an endpoint is default-allow in a direction until a policy selecting it
 *    enforces that direction; then only what a rule allows passes;
 *  - deny rules beat allow rules, whatever their specificity: the resolver
 *    never emits an allow that a deny of the same identity covers (the LPM
 *    lookup would otherwise pick the longer allow), and the datapath checks
 *    the wildcard identity separately;
 *  - a pod selector without `weft.io/cluster` matches pods of the policy's own
 *    cluster only; a namespaced policy's selectors stay in its namespace unless
 *    they name one.
 */
import { ReservedIdentity, type LabelSet } from '@weft/identity';
import { cidrContains, parseCidr, type Cidr } from '@weft/common';
import { prefixContains, rangeToPrefixes, type PortPrefix } from './ports.js';
import { matches } from './selector.js';
import { selectsIdentity, type IdentityPeer } from './selector-cache.js';
import type { Peer, Policy, PortRule, Rule } from './types.js';

export interface IdentityView {
  id: number;
  labels: LabelSet;
}

export interface CidrIdentityView {
  id: number;
  cidr: string;
}

export interface PolicyUniverse {
  /** The local cluster's name. */
  cluster: string;
  /** Every identity the node knows (local and remote clusters). */
  identities: readonly IdentityView[];
  /** Node-local identities of the CIDRs that policies name. */
  cidrIdentities: readonly CidrIdentityView[];
  /**
   * What an identity-dependent peer of `policy` selects, from a SelectorCache (selector-cache.ts);
   * without it `identities` is scanned for every rule.
   */
  selections?: (peer: IdentityPeer, policy: Policy) => Iterable<number>;
  /**
   * The port numbers pods of `identity` (0: any pod) expose under `name` (their containers'
   * named ports), for egress rules with a named port. Without it such rules allow nothing.
   */
  namedPorts?: (identity: number, name: string) => Iterable<NamedPort>;
}

/** A container port with a name, as a policy's named port resolves to it. */
export interface NamedPort {
  name: string;
  protocol: 'TCP' | 'UDP' | 'SCTP';
  port: number;
}

export interface EndpointView {
  epId: number;
  namespace: string;
  /** The endpoint's identity labels (namespace and cluster labels included). */
  labels: LabelSet;
  /** The endpoint's own named ports: what an ingress rule's named port resolves to. */
  namedPorts?: readonly NamedPort[];
}

export interface PolicyEntry {
  egress: boolean;
  /** Remote identity; 0 = any. */
  identity: number;
  /** IP protocol number; 0 = any protocol (then `port` is undefined). */
  protocol: number;
  /** Undefined = every port. */
  port?: PortPrefix;
  deny: boolean;
  /** `policy-id#direction#index` of the rule that produced it. */
  rule: string;
}

export interface EndpointPolicy {
  ingressEnforced: boolean;
  egressEnforced: boolean;
  audit: boolean;
  /** Ids of the policies selecting the endpoint. */
  policies: string[];
  entries: PolicyEntry[];
}

export const PROTOCOL_NUMBER = { TCP: 6, UDP: 17, SCTP: 132, ICMP: 1 } as const;

export const WORLD_IDS = [ReservedIdentity.world, ReservedIdentity['world-ipv4'], ReservedIdentity['world-ipv6']];
export const CLUSTER_RESERVED = [ReservedIdentity.host, ReservedIdentity['remote-node'], ReservedIdentity.health, ReservedIdentity.init];

/** Whether `policy` applies to the endpoint. */
export function selects(policy: Policy, ep: EndpointView, cluster: string): boolean {
  if (policy.cluster !== cluster) return false;
  if (policy.namespace !== undefined && policy.namespace !== ep.namespace) return false;
  return matches(policy.subject, ep.labels);
}

function peerIdentities(peer: Peer, policy: Policy, u: PolicyUniverse, cidrs: readonly ParsedCidrIdentity[]): number[] {
  const tracked = trackedPeer(peer);
  const out = staticIdentities(peer, cidrs);
  if (tracked) out.push(...selected(tracked, policy, u));
  return out;
}

/** A CIDR identity with its CIDR parsed. */
export interface ParsedCidrIdentity {
  id: number;
  cidr: Cidr;
}

export function parseCidrIdentities(cidrs: readonly CidrIdentityView[]): ParsedCidrIdentity[] {
  return cidrs.map((c) => ({ id: c.id, cidr: parseCidr(c.cidr) as Cidr }));
}

/** The part of a peer that depends on the identities the node knows (a selector's), if any. */
export function trackedPeer(peer: Peer): IdentityPeer | undefined {
  if (peer.kind === 'endpoints') return peer;
  if (peer.kind === 'entity' && peer.entity === 'cluster') return CLUSTER_PEER;
  return undefined;
}

const CLUSTER_PEER: IdentityPeer = Object.freeze({ kind: 'entity', entity: 'cluster' }) as IdentityPeer;

/** The identities a peer selects whatever identities the node knows: entities, CIDRs, the cluster's reserved ones. */
export function staticIdentities(peer: Peer, cidrs: readonly ParsedCidrIdentity[]): number[] {
  switch (peer.kind) {
    case 'endpoints':
      return [];
    case 'entity':
      switch (peer.entity) {
        case 'all':
          return [0];
        case 'world':
          return [...WORLD_IDS, ...cidrs.map((c) => c.id)];
        case 'host':
          return [ReservedIdentity.host];
        case 'remote-node':
          return [ReservedIdentity['remote-node']];
        case 'cluster':
          return [...CLUSTER_RESERVED];
      }
      return [];
    case 'cidr': {
      const outer = parseCidr(peer.cidr) as Cidr;
      const except = peer.except.map((e) => parseCidr(e) as Cidr);
      const out = cidrs.filter((c) => cidrContains(outer, c.cidr) && !except.some((x) => cidrContains(x, c.cidr))).map((c) => c.id);
      if (outer.bits === 0 && except.length === 0) out.push(...WORLD_IDS);
      return out;
    }
  }
}

/** The identities an identity-dependent peer selects: from the selector cache when given, else by a scan. */
function selected(peer: IdentityPeer, policy: Policy, u: PolicyUniverse): number[] {
  if (u.selections) return [...u.selections(peer, policy)];
  const out: number[] = [];
  for (const ident of u.identities) if (selectsIdentity(peer, policy.cluster, ident.labels)) out.push(ident.id);
  return out;
}

/** A protocol and port (prefix) of a rule. */
export interface PortEntry {
  protocol: number;
  port?: PortPrefix;
}

/**
 * The protocol and port entries of a rule's ports. A named port resolves to the numbers the
 * destination pods give that name: for ingress the endpoint's own (`mine`), for egress those of the
 * peer (`theirs`); a name nobody gives matches nothing (Kubernetes' rule), so it adds no entry.
 */
export function portEntries(ports: readonly PortRule[], named: ((name: string) => Iterable<NamedPort>) | undefined): PortEntry[] {
  if (ports.length === 0) return [{ protocol: 0 }];
  const out: PortEntry[] = [];
  for (const p of ports) {
    if (p.name !== undefined) {
      for (const n of named?.(p.name) ?? []) {
        if (p.protocol !== 'ANY' && p.protocol !== n.protocol) continue;
        out.push({ protocol: PROTOCOL_NUMBER[n.protocol], port: { port: n.port, bits: 16 } });
      }
      continue;
    }
    const protos = p.protocol === 'ANY' ? (p.port === undefined ? [0] : [6, 17, 132]) : [PROTOCOL_NUMBER[p.protocol]];
    for (const protocol of protos) {
      if (p.port === undefined || protocol === 0) out.push({ protocol });
      else for (const port of rangeToPrefixes(p.port, p.endPort ?? p.port)) out.push({ protocol, port });
    }
  }
  return out;
}

export function entryKey(e: PolicyEntry): string {
  return `${e.egress ? 1 : 0}|${e.identity}|${e.protocol}|${e.port ? `${e.port.port}/${e.port.bits}` : '*'}`;
}

/** Whether deny entry `d` covers allow entry `a` (same direction and identity). */
export function covers(d: PolicyEntry, a: PolicyEntry): boolean {
  if (d.protocol === 0) return true;
  if (d.protocol !== a.protocol) return false;
  if (d.port === undefined) return true;
  return a.port !== undefined && prefixContains(d.port, a.port);
}

export function resolveEndpoint(ep: EndpointView, policies: readonly Policy[], u: PolicyUniverse): EndpointPolicy {
  const cidrs = parseCidrIdentities(u.cidrIdentities);
  const result: EndpointPolicy = { ingressEnforced: false, egressEnforced: false, audit: false, policies: [], entries: [] };
  const byKey = new Map<string, PolicyEntry>();
  for (const policy of policies) {
    if (!selects(policy, ep, u.cluster)) continue;
    result.policies.push(policy.id);
    if (policy.enforces.includes('ingress')) result.ingressEnforced = true;
    if (policy.enforces.includes('egress')) result.egressEnforced = true;
    if (policy.audit) result.audit = true;
    policy.rules.forEach((rule: Rule, index) => {
      const ruleId = `${policy.id}#${rule.direction}#${index}`;
      const identities = rule.peers.length === 0 ? [0] : [...new Set(rule.peers.flatMap((p) => peerIdentities(p, policy, u, cidrs)))];
      const named = rule.ports.some((p) => p.name !== undefined);
      const mine = (name: string): NamedPort[] => (ep.namedPorts ?? []).filter((n) => n.name === name);
      const ingressPorts = rule.direction === 'ingress' || !named ? portEntries(rule.ports, mine) : undefined;
      for (const identity of identities) {
        // Egress to a named port: the numbers this peer's pods give the name (CIDR identities have none).
        const ports = ingressPorts ?? portEntries(rule.ports, (name) => u.namedPorts?.(identity, name) ?? []);
        for (const p of ports) {
          const entry: PolicyEntry = { egress: rule.direction === 'egress', identity, protocol: p.protocol, deny: rule.action === 'deny', rule: ruleId };
          if (p.port) entry.port = p.port;
          const key = entryKey(entry);
          const prev = byKey.get(key);
          if (!prev || (entry.deny && !prev.deny)) byKey.set(key, entry);
        }
      }
    });
  }
  // Deny beats allow: drop allows that a deny of the same identity covers.
  const denies = new Map<string, PolicyEntry[]>();
  for (const e of byKey.values()) {
    if (!e.deny) continue;
    const k = `${e.egress}|${e.identity}`;
    (denies.get(k) ?? denies.set(k, []).get(k)!).push(e);
  }
  for (const e of byKey.values()) {
    if (!e.deny && denies.get(`${e.egress}|${e.identity}`)?.some((d) => covers(d, e))) continue;
    result.entries.push(e);
  }
  return result;
}

/** Every CIDR that a set of policies names (the agent gives each a node-local identity). */
export function policyCidrs(policies: readonly Policy[]): string[] {
  const out = new Set<string>();
  for (const p of policies) for (const r of p.rules) for (const peer of r.peers) if (peer.kind === 'cidr') [peer.cidr, ...peer.except].forEach((c) => out.add(c));
  return [...out].sort();
}
