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

/** One service port and its backends, as the load balancer programs it. */
export interface ServiceProgram {
  vip: string;
  port: number;
  protocol: 'TCP' | 'UDP';
  backends: ReadonlyArray<{ ip: string; port: number }>;
}

/** A policy entry with its numeric rule id, as the map stores it. */
export interface PolicyMapEntry extends Omit<PolicyEntry, 'rule'> {
  ruleId: number;
}

/** A flow event as the datapath decoded it, addresses in dotted form. */
export type FlowSample = Omit<FlowRecord, 'saddr' | 'daddr' | 'ifindex'> & { saddr: string; daddr: string };

export interface Datapath {
  /** Loads (or re-attaches to pinned) programs and maps, sets the node config, prepares the tunnel. */
  start(): Promise<void>;
  /** The device where pod traffic arriving in the clear from other nodes is dropped (strict WireGuard), if any. */
  clearIngressFilter(): string | undefined;
  /** Stops reading events; programs and maps stay in place so traffic keeps flowing. */
  stop(): Promise<void>;
  /** Replaces the whole ipcache content with `entries` (only differences are written). */
  syncIpcache(entries: readonly IpcacheUpsert[]): Promise<{ added: number; updated: number; removed: number }>;
  /** Programs (or updates) an endpoint and attaches the programs to its veth. */
  upsertEndpoint(ep: EndpointProgram, policyRev: number): Promise<void>;
  removeEndpoint(ip: string, epId: number): Promise<void>;
  /** Replaces an endpoint's policy entries (differences only); returns how many changed. */
  syncPolicy(epId: number, entries: readonly PolicyMapEntry[]): Promise<number>;
  /**
   * Replaces the whole load-balancer content with `services` (differences
   * only, in an order where a packet never finds a slot count without its slots).
   */
  syncServices(services: readonly ServiceProgram[]): Promise<{ frontends: number; changed: number }>;
  /** Current map contents, for the CLI. */
  dumpIpcache(): Promise<Array<{ cidr: string; identity: number; tunnelIp?: string; flags: number }>>;
  dumpServices(): Promise<ServiceProgram[]>;
  dumpPolicy(epId: number): Promise<Array<PolicyMapEntry & { packets: bigint; bytes: bigint }>>;
  onFlow(listener: (flow: FlowSample) => void): void;
}
