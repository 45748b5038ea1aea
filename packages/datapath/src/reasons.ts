/**
 * Drop reasons, flow verdicts and observation points: append-only registries
 * shared with bpf/lib/weft_types.h and the CLI. A number is never reused for
 * another meaning; a retired reason keeps its number and name.
 */

export const DropReason = {
  1: 'POLICY_DENIED',
  2: 'POLICY_DENY_RULE',
  3: 'INVALID_PACKET',
  4: 'UNKNOWN_SOURCE',
  5: 'NO_TUNNEL_ENDPOINT',
  6: 'UNSUPPORTED_L3',
  7: 'REDIRECT_FAILED',
  8: 'POLICY_REVOKED',
  9: 'UNKNOWN_ENDPOINT',
  10: 'NO_SERVICE_BACKEND',
  11: 'NAT_FAILED',
  12: 'UNENCRYPTED',
  13: 'UNENCRYPTED_INGRESS',
  14: 'TUNNEL_SOURCE_NOT_NODE',
  15: 'TUNNEL_CLUSTER_MISMATCH',
  16: 'RESERVED_IDENTITY_CLAIM',
  17: 'INNER_SOURCE_MISMATCH',
  18: 'SOURCE_NOT_FROM_OWNER',
  20: 'CT_FULL',
  21: 'CT_QUOTA',
  22: 'IDENTITY_CHANGED',
  24: 'FRAGMENT_NO_FIRST',
  28: 'FAIL_CLOSED',
  29: 'IPCACHE_INCOMPLETE',
} as const satisfies Record<number, string>;

/** What each reason means, for `weft observe` and the docs. */
export const DropReasonText: Record<keyof typeof DropReason, string> = {
  1: 'no policy rule allows it (default deny)',
  2: 'a deny rule matched',
  3: 'truncated or malformed headers',
  4: "the source address is not this veth's endpoint (spoofing)",
  5: 'remote destination without a tunnel endpoint',
  6: 'not IPv4 or ARP',
  7: 'redirect or tunnel key failed',
  8: 'an established connection is no longer allowed after a policy change',
  9: 'no local endpoint has the destination address',
  10: 'a service address with no backend',
  11: 'rewriting addresses or checksums failed',
  12: 'would leave for another node unencrypted (strict encryption)',
  13: 'pod or tunnel traffic from another node arrived in the clear on the underlay, where it must be encrypted',
  14: 'a tunnel packet whose outer source is no node of the mesh',
  15: "the VNI names an identity of another cluster than the sending node's",
  16: 'the VNI is a reserved or node-local identity the sending node may not claim',
  17: 'the inner source of a tunnel packet is not an address of the sending node',
  18: 'a pod or node address arrived from the underlay from a machine that does not own it',
  20: 'a new connection while the conntrack table is full (no entry is evicted for it)',
  21: "a new connection while its endpoint holds its quota of conntrack entries",
  22: "an established connection's peer changed identity and the new identity is not allowed",
  24: 'a later IP fragment whose first fragment was not seen (or is over 30 s old): its ports are unknown',
  28: "the endpoint's policy could not be written (a full policy map): all its traffic is dropped until it is",
  29: 'the ipcache is incomplete (full) and the peer has no exact entry: its identity cannot be trusted',
};

/** Codes the agent reacts to: the conntrack table or an endpoint's quota had no room (its garbage collector sweeps at once). */
export const DROP_CT_FULL = 20;
export const DROP_CT_QUOTA = 21;

export const Verdict = { 1: 'FORWARDED', 2: 'DROPPED', 3: 'AUDIT' } as const;
export const ObservationPoint = { 1: 'from-endpoint', 2: 'to-endpoint', 3: 'from-overlay', 4: 'from-underlay' } as const;
export const FlowFlag = { reply: 0x1, new: 0x2, tunneled: 0x4, encrypted: 0x8, related: 0x10 } as const;

export function dropReasonName(code: number): string {
  return (DropReason as Record<number, string>)[code] ?? `UNKNOWN_${code}`;
}
