/**
 * The in-memory Datapath: the port's contract (datapath-port.ts) without BPF,
 * for control-plane tests that need no root (ClusterState fed by a real etcd,
 * the clustermesh tests with a hostile remote). It keeps what would be in the
 * maps, so a test asserts on the ipcache the node would have.
 */
import type { ConntrackStatus, ConntrackSweep, Datapath, EndpointPolicyOutcome, EndpointProgram, FlowSample, IpcacheStatus, IpcacheSyncResult, IpcacheUpsert, MapStatus, NodeAddressUpsert, PolicyMapChanges, PolicyMapEntry, ServiceFrontendRef, ServiceProgram } from './datapath-port.js';

export class MemoryDatapath implements Datapath {
  readonly ipcache = new Map<string, IpcacheUpsert>();
  /** weft_nodes: address -> the node it belongs to. */
  readonly nodes = new Map<string, NodeAddressUpsert>();
  readonly endpoints = new Map<string, EndpointProgram>();
  readonly policies = new Map<number, PolicyMapEntry[]>();
  /** The service map by frontend (`vip/port/protocol`), in the order frontends were first written. */
  private readonly frontends = new Map<string, ServiceProgram>();
  /** weft_policy_cidrs: CIDR -> identity. */
  readonly policyCidrs = new Map<string, number>();
  private readonly flowListeners: Array<(flow: FlowSample) => void> = [];
  private lostFlowEvents = 0n;
  private highestRev = 0;
  /** Each endpoint's entries array -> the position of each entry, for updates by difference. */
  private readonly positions = new WeakMap<PolicyMapEntry[], Map<string, number>>();

  async start(): Promise<void> {}

  clearIngressFilter(): string | undefined {
    return undefined;
  }

  async stop(): Promise<void> {}

  async uninstall(): Promise<string[]> {
    return [];
  }

  /** No size limit: every entry fits (map-full behaviour is the BPF datapath's, tested there). */
  async syncIpcache(entries: readonly IpcacheUpsert[]): Promise<IpcacheSyncResult> {
    const want = new Set(entries.map((e) => e.cidr));
    const gone = [...this.ipcache.keys()].filter((c) => !want.has(c)).map((cidr) => ({ cidr, entry: undefined }));
    return this.updateIpcache([...gone, ...entries.map((entry) => ({ cidr: entry.cidr, entry }))]);
  }

  async updateIpcache(changes: ReadonlyArray<{ cidr: string; entry: IpcacheUpsert | undefined }>): Promise<IpcacheSyncResult> {
    let added = 0;
    let updated = 0;
    let removed = 0;
    for (const { cidr, entry } of changes) {
      const prev = this.ipcache.get(cidr);
      if (entry === undefined) {
        if (prev && this.ipcache.delete(cidr)) removed++;
        continue;
      }
      if (!prev) added++;
      else if (JSON.stringify(prev) !== JSON.stringify(entry)) updated++;
      this.ipcache.set(cidr, entry);
    }
    return { added, updated, removed, missing: 0 };
  }

  ipcacheStatus(): IpcacheStatus {
    return { complete: true, entries: this.ipcache.size, maxEntries: Number.MAX_SAFE_INTEGER, missing: 0 };
  }

  async syncPolicyCidrs(cidrs: ReadonlyArray<{ cidr: string; id: number }>, mode: 'add' | 'exact'): Promise<void> {
    if (mode === 'exact') this.policyCidrs.clear();
    for (const c of cidrs) this.policyCidrs.set(c.cidr, c.id);
  }

  async syncNodes(entries: readonly NodeAddressUpsert[]): Promise<{ added: number; updated: number; removed: number }> {
    const want = new Map(entries.map((e) => [e.addr, e]));
    let added = 0;
    let updated = 0;
    let removed = 0;
    for (const [addr, e] of want) {
      const prev = this.nodes.get(addr);
      if (!prev) added++;
      else if (JSON.stringify(prev) !== JSON.stringify(e)) updated++;
      this.nodes.set(addr, e);
    }
    for (const addr of [...this.nodes.keys()]) {
      if (want.has(addr)) continue;
      this.nodes.delete(addr);
      removed++;
    }
    return { added, updated, removed };
  }

  async dumpNodes(): Promise<NodeAddressUpsert[]> {
    return [...this.nodes.values()];
  }

  async programEndpoint(ep: EndpointProgram, entries: readonly PolicyMapEntry[], policyRev: number): Promise<EndpointPolicyOutcome> {
    this.endpoints.set(ep.ip, ep);
    this.highestRev = Math.max(this.highestRev, policyRev);
    const before = JSON.stringify(this.policies.get(ep.epId) ?? []);
    const copy = [...entries];
    this.policies.set(ep.epId, copy);
    this.positions.set(copy, new Map(copy.map((e, i) => [entryKey(e), i])));
    return { state: 'ok', changes: before === JSON.stringify(entries) ? 0 : entries.length, gen: 0 };
  }

  async updateEndpointPolicy(ep: EndpointProgram, changes: PolicyMapChanges, policyRev: number): Promise<EndpointPolicyOutcome> {
    this.endpoints.set(ep.ip, ep);
    this.highestRev = Math.max(this.highestRev, policyRev);
    let entries = this.policies.get(ep.epId);
    if (!entries) this.policies.set(ep.epId, (entries = []));
    // In place, by the array's index (rebuilt if someone replaced the array): as cheap as the change, as the BPF map is.
    let index = this.positions.get(entries);
    if (!index) {
      index = new Map(entries.map((e, i) => [entryKey(e), i]));
      this.positions.set(entries, index);
    }
    for (const e of changes.remove) {
      const k = entryKey(e);
      const i = index.get(k);
      if (i === undefined) continue;
      const last = entries.pop()!;
      index.delete(k);
      if (i < entries.length) {
        entries[i] = last;
        index.set(entryKey(last), i);
      }
    }
    for (const e of changes.upsert) {
      const k = entryKey(e);
      const i = index.get(k);
      if (i !== undefined) entries[i] = e;
      else index.set(k, entries.push(e) - 1);
    }
    return { state: 'ok', changes: changes.upsert.length + changes.remove.length, gen: 0 };
  }

  async removeEndpoint(ip: string, epId: number): Promise<void> {
    this.endpoints.delete(ip);
    this.policies.delete(epId);
  }

  /** No connections are tracked without packets: sweeps find nothing. */
  async sweepConntrack(): Promise<ConntrackSweep> {
    return { scanned: 0, expired: 0, flushed: 0, live: new Map(), recounted: 0, durationMs: 0 };
  }

  async conntrackStatus(): Promise<ConntrackStatus> {
    return { capacity: Number.MAX_SAFE_INTEGER, byEndpoint: new Map(), dropsFull: 0n, dropsQuota: 0n };
  }

  async highestPolicyRevision(): Promise<number> {
    return this.highestRev;
  }

  async syncServices(services: readonly ServiceProgram[]): Promise<{ frontends: number; changed: number }> {
    const wanted = new Set(services.map(frontendKey));
    return this._writeServices(services, [...this.frontends.values()].filter((f) => !wanted.has(frontendKey(f))));
  }

  async updateServices(services: readonly ServiceProgram[], removed: readonly ServiceFrontendRef[]): Promise<{ frontends: number; changed: number }> {
    return this._writeServices(services, removed);
  }

  private _writeServices(services: readonly ServiceProgram[], removed: readonly ServiceFrontendRef[]): { frontends: number; changed: number } {
    let changed = 0;
    for (const f of removed) if (this.frontends.delete(frontendKey(f))) changed++;
    for (const s of services) {
      const key = frontendKey(s);
      const held = this.frontends.get(key);
      if (!held || JSON.stringify(held.backends) !== JSON.stringify(s.backends)) changed++;
      this.frontends.set(key, { vip: s.vip, port: s.port, protocol: s.protocol, backends: [...s.backends] });
    }
    return { frontends: this.frontends.size, changed };
  }

  /** What the service map holds. */
  get services(): ServiceProgram[] {
    return [...this.frontends.values()];
  }

  async dumpIpcache(): Promise<Array<{ cidr: string; identity: number; tunnelIp?: string; flags: number }>> {
    return [...this.ipcache.values()].map(({ cidr, identity, tunnelIp, flags }) => ({ cidr, identity, flags, ...(tunnelIp !== undefined ? { tunnelIp } : {}) }));
  }

  async dumpServices(): Promise<ServiceProgram[]> {
    return this.services;
  }

  async dumpPolicy(epId: number): Promise<Array<PolicyMapEntry & { packets: bigint; bytes: bigint }>> {
    return (this.policies.get(epId) ?? []).map((e) => ({ ...e, packets: 0n, bytes: 0n }));
  }

  mapStatus(): MapStatus[] {
    return [];
  }

  onFlow(listener: (flow: FlowSample) => void): void {
    this.flowListeners.push(listener);
  }

  async flowEventsLost(): Promise<bigint> {
    return this.lostFlowEvents;
  }

  /** For tests: `count` more flow events lost, as a full ring buffer would count them. */
  loseFlowEvents(count = 1n): void {
    this.lostFlowEvents += count;
  }

  /** A flow event, as the BPF datapath's ring buffer would deliver it: every listener hears it. */
  emitFlow(flow: FlowSample): void {
    for (const listener of this.flowListeners) listener(flow);
  }
}

function frontendKey(f: ServiceFrontendRef): string {
  return `${f.vip}/${f.port}/${f.protocol}`;
}

function entryKey(e: PolicyMapEntry): string {
  return `${e.egress ? 1 : 0}|${e.identity}|${e.protocol}|${e.port ? `${e.port.port}/${e.port.bits}` : '*'}`;
}
