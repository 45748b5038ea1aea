/**
 * The internal policy model, a leaf that imports nothing. Kubernetes
 * NetworkPolicy and Weft's own policy resources are both parsed into it, so the
 * resolver and the datapath see one language.
 */

export type SelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

export interface SelectorRequirement {
  key: string;
  operator: SelectorOperator;
  values: string[];
}

/** A Kubernetes label selector; empty matches everything. */
export interface Selector {
  matchLabels: Record<string, string>;
  matchExpressions: SelectorRequirement[];
}

export type Entity = 'world' | 'cluster' | 'host' | 'remote-node' | 'all';

export type Peer =
  /** Pods: `pods` over pod labels; `namespaces` over namespace labels, or `namespace` fixed (the policy's own). */
  | { kind: 'endpoints'; pods: Selector; namespaces?: Selector; namespace?: string }
  | { kind: 'entity'; entity: Entity }
  | { kind: 'cidr'; cidr: string; except: string[] };

export type Protocol = 'TCP' | 'UDP' | 'SCTP' | 'ICMP' | 'ANY';

/** A port or an inclusive port range; `port` undefined = every port of the protocol. */
export interface PortRule {
  protocol: Protocol;
  port?: number;
  endPort?: number;
  /** A named port (`port: http`): the number comes from the pods' container ports, per destination pod. */
  name?: string;
}

/** Kubernetes' IANA_SVC_NAME: what a container port may be called, and a policy's `port` may name. */
export const PORT_NAME_RE = /^(?=.{1,15}$)(?=.*[a-z])[a-z0-9]+(-[a-z0-9]+)*$/;

export type Direction = 'ingress' | 'egress';

/** One rule: in `direction`, traffic with `peers` on `ports` is allowed or denied. */
export interface Rule {
  direction: Direction;
  action: 'allow' | 'deny';
  /** Empty: every peer. */
  peers: Peer[];
  /** Empty: every protocol and port. */
  ports: PortRule[];
}

export interface Policy {
  /** `kind/namespace/name` or `kind/name` for clusterwide policies. */
  id: string;
  kind: 'NetworkPolicy' | 'WeftNetworkPolicy' | 'WeftClusterwideNetworkPolicy';
  name: string;
  /** Undefined for clusterwide policies. */
  namespace?: string;
  /** The cluster the policy was applied in: selectors without weft.io/cluster match only it. */
  cluster: string;
  /** Which endpoints the policy applies to. */
  subject: Selector;
  /** Directions the policy puts into default-deny for its subjects. */
  enforces: Direction[];
  rules: Rule[];
  /** Drops are reported as AUDIT and let through. */
  audit: boolean;
}
