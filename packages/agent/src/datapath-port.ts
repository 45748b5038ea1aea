/**
 * What the agent's control plane needs from a node's datapath (the agent
 * defines the interface; the BPF implementation and the in-memory one used by
 * control-plane tests implement it). Every method is idempotent.
 */
import type { FlowRecord } from '@weft/datapath';
import type { PolicyEntry } from '@weft/policy';

export interface IpcacheUpsert {
  /** IPv4 prefix, e.g. 10.101.1.5/32. */
  cidr: string;
  identity: number;
  /** Underlay IP of the node hosting it; undefined = this node or nowhere. */
  tunnelIp?: string;
  flags: number;
  clusterId: number;
}

/** An address another node sends tunnel packets from (its node IP or router IP), and that node. */
export interface NodeAddressUpsert {
  addr: string;
  nodeIp: string;
  /** The node's router IP (with encryption). */
  routerIp?: string;
  /** The node's cluster; 0 = unknown (no VNI matches it). */
  clusterId: number;
  /** NODE_ADDR_F_* (bpf/lib/weft_types.h). */
  flags: number;
}

export interface EndpointProgram {
  epId: number;
  ip: string;
  ifname: string;
  identity: number;
  mac: string;
  nodeMac: string;
  ingressEnforced: boolean;
  egressEnforced: boolean;
  audit: boolean;
}

/** One service port (a frontend of the load balancer). */
export interface ServiceFrontendRef {
  vip: string;
  port: number;
  protocol: 'TCP' | 'UDP';
}

/** One service port and its backends, as the load balancer programs it. */
export interface ServiceProgram extends ServiceFrontendRef {
  backends: ReadonlyArray<{ ip: string; port: number }>;
}

/** A policy entry with its numeric rule id, as the map stores it. */
export interface PolicyMapEntry extends Omit<PolicyEntry, 'rule'> {
  ruleId: number;
}

/** Differences of an endpoint's policy: entries to write (new or changed) and to delete. */
export interface PolicyMapChanges {
  upsert: readonly PolicyMapEntry[];
  remove: readonly PolicyMapEntry[];
}

/**
 * `ok`: the policy asked for is in force. `stale`: the old policy stays in force (less any denies
 * the new one drops) because new entries that only grant access did not fit. `fail-closed`: a
 * policy that takes access away could not be written, so all the endpoint's traffic is dropped
 * (reason FAIL_CLOSED).
 */
export type EndpointPolicyState = 'ok' | 'stale' | 'fail-closed';

export interface EndpointPolicyOutcome {
  state: EndpointPolicyState;
  /** Policy entries written and deleted. */
  changes: number;
  /** Why the policy asked for is not (all) in force; set unless `ok`. */
  error?: string;
  /** The policy generation in force (0 or 1). */
  gen: number;
}

export interface IpcacheSyncResult {
  added: number;
  updated: number;
  removed: number;
  /** Wanted entries that are not in the map (it is full). */
  missing: number;
}

export interface IpcacheStatus {
  /** Every wanted entry is in the map; when not, NODE_F_IPCACHE_INCOMPLETE is set. */
  complete: boolean;
  entries: number;
  maxEntries: number;
  missing: number;
  incompleteSince?: string;
}

/** One sized map: its size, and how many entries the agent keeps in it where it knows. */
export interface MapStatus {
  name: string;
  maxEntries: number;
  /** Entries in use; absent where only the datapath adds entries (conntrack). */
  entries?: number;
  /** Set when the agent replaced a pinned map of another size at start. */
  resized?: { from: number; copied: number; dropped: number };
}

/**
 * A flow event as the datapath decoded it, addresses in dotted form. `serviceAddr` is undefined
 * when the event names no Service (`servicePort` is then 0); FlowRecord says where it is set.
 */
export type FlowSample = Omit<FlowRecord, 'saddr' | 'daddr' | 'ifindex' | 'serviceAddr'> & { saddr: string; daddr: string; serviceAddr?: string };

/** What one conntrack sweep did (conntrack.ts). */
export interface ConntrackSweep {
  /** Entries read. */
  scanned: number;
  /** Dead entries deleted (expired). */
  expired: number;
  /** Entries deleted because their endpoint (or its address) was flushed. */
  flushed: number;
  /** Entries left, per endpoint id. */
  live: Map<number, number>;
  /** Per-endpoint counts that had drifted and were rewritten. */
  recounted: number;
  durationMs: number;
}

/** Conntrack pressure, cheap to read (no walk of the table). */
export interface ConntrackStatus {
  /** The table's size. */
  capacity: number;
  /** Endpoint id -> entries it holds (live or dead not yet collected), the non-zero ones. */
  byEndpoint: Map<number, number>;
  /** New connections refused: the table was full; the endpoint was at its quota. */
  dropsFull: bigint;
  dropsQuota: bigint;
}

export interface Datapath {
  /** Loads (or re-attaches to pinned) programs and maps, sets the node config, prepares the tunnel. */
  start(): Promise<void>;
  /** The underlay device from_underlay guards (clear pod and tunnel traffic from other nodes), once started. */
  clearIngressFilter(): string | undefined;
  /** Stops reading events; programs and maps stay in place so traffic keeps flowing. */
  stop(): Promise<void>;
  /**
   * Takes the datapath off the node for good (`weft agent uninstall`, the chart's preStop with
   * cni.uninstall): stops it, detaches its programs from `endpointDevices` (the pods' host-side
   * veths, which stay with the pods) and from the underlay device (its own filter only), deletes
   * its tunnel device and removes every pin. Returns what it removed.
   */
  uninstall(endpointDevices: readonly string[]): Promise<string[]>;
  /**
   * Replaces the whole ipcache content with `entries` (only differences are written). A full map
   * is not an error: the entries of least precedence are left out, `missing` says how many, and
   * the datapath distrusts inexact lookups until a sync writes everything.
   */
  syncIpcache(entries: readonly IpcacheUpsert[]): Promise<IpcacheSyncResult>;
  /** Writes what changed for some prefixes (entry undefined: the prefix goes); the rest stays. Full maps as for syncIpcache. */
  updateIpcache(changes: ReadonlyArray<{ cidr: string; entry: IpcacheUpsert | undefined }>): Promise<IpcacheSyncResult>;
  ipcacheStatus(): IpcacheStatus;
  /**
   * The CIDRs policies name, with their CIDR identities (weft_policy_cidrs): where the ipcache
   * gives an address its pod's or node's identity, this gives the ipBlock it falls in, so an
   * ipBlock selects pod and node addresses too. 'add' writes the new and changed ones and keeps
   * the others (before any policy naming them is written); 'exact' also removes the ones not
   * given (once no policy names them). Only differences are written.
   */
  syncPolicyCidrs(cidrs: ReadonlyArray<{ cidr: string; id: number }>, mode: 'add' | 'exact'): Promise<void>;
  /** Replaces the whole set of other nodes' addresses (weft_nodes; only differences are written). */
  syncNodes(entries: readonly NodeAddressUpsert[]): Promise<{ added: number; updated: number; removed: number }>;
  /**
   * Programs (or updates) an endpoint with its policy `entries` under revision `policyRev`, and
   * attaches the programs to its veth. Per endpoint the policy changes as a whole or the
   * endpoint fails closed (see the outcome); only a failure to create the endpoint's own entry
   * throws (the endpoint then has none: its traffic is dropped).
   */
  programEndpoint(ep: EndpointProgram, entries: readonly PolicyMapEntry[], policyRev: number): Promise<EndpointPolicyOutcome>;
  /**
   * Changes some entries of a programmed endpoint's policy (and its revision to `policyRev`),
   * the rest staying as they are: the policy engine's per-rule updates. Outcomes as for
   * programEndpoint; the endpoint's programs are already attached.
   */
  updateEndpointPolicy(ep: EndpointProgram, changes: PolicyMapChanges, policyRev: number): Promise<EndpointPolicyOutcome>;
  /** Removes an endpoint: its entry, its policy, and its conntrack entries (and those with its address). */
  removeEndpoint(ip: string, epId: number): Promise<void>;
  /** Deletes dead conntrack entries and rewrites the per-endpoint counts: the garbage collector's sweep. */
  sweepConntrack(): Promise<ConntrackSweep>;
  conntrackStatus(): Promise<ConntrackStatus>;
  /** The highest policy revision the datapath holds (0 if none), so revisions never go back. */
  highestPolicyRevision(): Promise<number>;
  /**
   * Replaces the whole load-balancer content with `services` (differences
   * only, in an order where a packet never finds a slot count without its slots).
   */
  syncServices(services: readonly ServiceProgram[]): Promise<{ frontends: number; changed: number }>;
  /**
   * Writes some frontends (each with its whole backend list, differences only, as syncServices)
   * and removes the `removed` ones; every other frontend stays as it is. `frontends` counts all
   * frontends held afterwards. The normal path: syncServices is the resync.
   */
  updateServices(services: readonly ServiceProgram[], removed: readonly ServiceFrontendRef[]): Promise<{ frontends: number; changed: number }>;
  /** Current map contents, for the CLI. */
  dumpIpcache(): Promise<Array<{ cidr: string; identity: number; tunnelIp?: string; flags: number }>>;
  dumpNodes(): Promise<NodeAddressUpsert[]>;
  dumpServices(): Promise<ServiceProgram[]>;
  dumpPolicy(epId: number): Promise<Array<PolicyMapEntry & { packets: bigint; bytes: bigint }>>;
  /** Size and use of each sized map. */
  mapStatus(): MapStatus[];
  onFlow(listener: (flow: FlowSample) => void): void;
  /**
   * Flow events the datapath could not hand over since its maps were created (the ring buffer was
   * full: the packets went on, their events did not), summed over CPUs. Only grows; it survives
   * agent restarts with the pins and starts again from 0 after an uninstall.
   */
  flowEventsLost(): Promise<bigint>;
}
