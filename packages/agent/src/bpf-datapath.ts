/**
 * BpfDatapath: the Datapath on the real kernel. Loads bpf_lxc.o,
 * bpf_overlay.o and bpf_host.o with one pin root, so all share the node's maps
 * and a restarted agent finds them again; attaches programs to the pod veths,
 * the tunnel device and the underlay device with
 * replace semantics (no gap in enforcement); and keeps an
 * in-memory mirror of what it wrote so every sync writes only differences.
 * On start the mirror is loaded from the pinned maps themselves, so a restart
 * diffs against what the kernel really holds.
 */
import { existsSync, mkdirSync, readdirSync, rmdirSync, rmSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { formatCidr, parseCidr, type Cidr, type Logger } from '@weft/common';
import {
  attachTc,
  destroyTcHook,
  detachTc,
  ifindexOf,
  ensureBpffs,
  BpfMap,
  BpfObject,
  RingBufferReader,
  MapName,
  ROUTING_DIRECT,
  ROUTING_TUNNEL,
  decodeFlowEvent,
  decodeFlowEventsLost,
  decodeIpcache,
  decodeNodeAddress,
  decodeLb,
  decodePolicy,
  encodeLbBackendKey,
  encodeLbKey,
  encodeLbKeyInto,
  encodeLbValueInto,
  encodeLbBackendKeyInto,
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  NODE_F_AUDIT,
  NODE_F_STRICT_INGRESS,
  NODE_F_IPCACHE_INCOMPLETE,
  SIZED_MAPS,
  type NodeConfig,
  type ResizedMap,
  type SizedMap,
  LB_BACKEND_KEY,
  LB_KEY,
  LB_VALUE,
  LbVipFilter,
  NODE_INFO,
  type LbFrontend,
  encodeNodeConfig,
  encodeNodeInfo,
  encodeNodeKey,
  intToIpv4,
  ipv4ToInt,
  decodeEndpoint,
  decodePolicyCidr,
  encodePolicyCidr,
  RetiredMapNames,
} from '@weft/datapath';
import { Ip } from '@weft/net';
import { conntrackConfig, mapSizesOf, type AgentConfig } from './config.js';
import { ConntrackTable } from './conntrack.js';
import { AgentConfigError, EndpointProgramError } from './errors.js';
import type { ConntrackStatus, ConntrackSweep, Datapath, EndpointPolicyOutcome, EndpointProgram, FlowSample, IpcacheStatus, IpcacheSyncResult, IpcacheUpsert, MapStatus, NodeAddressUpsert, PolicyMapChanges, PolicyMapEntry, ServiceFrontendRef, ServiceProgram } from './datapath-port.js';
import { IpcacheWriter } from './ipcache-writer.js';
import { PolicyMapWriter } from './policy-map-writer.js';
import { stableSlots } from './services.js';

/** Geneve's IANA port: the kernel's Geneve device listens there (VXLAN's port is configurable). */
const GENEVE_PORT = 6081;

/**
 * Where from_underlay sits on the underlay device's tc ingress. The device is not Weft's own (a
 * NIC other software may filter too), so the filter has a handle of its own ("weft" in ASCII):
 * replacing or removing it never touches another filter at the same priority.
 */
const UNDERLAY_TC = { direction: 'ingress', priority: 1, handle: 0x77656674 } as const;

export class BpfDatapath implements Datapath {
  private filteredUnderlay: string | undefined;
  private lxc: BpfObject | undefined;
  private overlay: BpfObject | undefined;
  private host: BpfObject | undefined;
  private maps!: { ipcache: BpfMap; nodes: BpfMap; endpoints: BpfMap; policy: BpfMap; policyCidrs: BpfMap; ct: BpfMap; config: BpfMap; events: BpfMap; eventsLost: BpfMap; lbServices: BpfMap; lbBackends: BpfMap };
  private ipcache!: IpcacheWriter;
  private policy!: PolicyMapWriter;
  private conntrack!: ConntrackTable;
  /** The node config as last written (NODE_F_IPCACHE_INCOMPLETE comes and goes). */
  private nodeConfig!: NodeConfig;
  /** Pinned maps replaced at start because their size was not the configured one. */
  private resized: ResizedMap[] = [];
  /** address -> encoded node_info (hex) of what weft_nodes holds. */
  private readonly nodesMirror = new Map<string, string>();
  /** Frontend ("vip/port/protocol", numbers) -> backends ("ip:port") in slot order, as the maps hold them. */
  private lbOrder = new Map<string, string[]>();
  /** Which addresses may be a service's (weft_lb_vips), kept a superset of lbOrder's addresses. */
  private lbVips!: LbVipFilter;
  /** CIDR -> identity, as weft_policy_cidrs holds them. */
  private readonly policyCidrsMirror = new Map<string, number>();
  private reader: RingBufferReader | undefined;
  /** Flow events name few addresses, over and over: each is formatted once. */
  private readonly addresses = new AddressStrings();
  private readonly listeners: Array<(f: FlowSample) => void> = [];
  private readonly ip = new Ip();

  /**
   * `options.underlay: false` is for tools that load the datapath outside any node (a benchmark
   * programming maps in the machine's own namespace): nothing is attached to a device there. An
   * agent always guards its underlay.
   */
  constructor(
    private readonly config: AgentConfig,
    private readonly log: Logger,
    private readonly options: { underlay?: boolean } = {},
  ) {}

  async start(): Promise<void> {
    const c = this.config;
    ensureBpffs();
    mkdirSync(c.pinRoot, { recursive: true });
    // Every object gets the same sizes (libbpf reuses a pin only if it matches); the first one replaces pins of another size.
    const sizes = mapSizesOf(c);
    const maxEntries = Object.fromEntries((Object.keys(SIZED_MAPS) as SizedMap[]).map((k) => [MapName[k], sizes[k]]));
    const sized = { pinRoot: c.pinRoot, maxEntries, copyWhole: [MapName.policy], logger: this.log };
    this.lxc = BpfObject.open(join(c.bpfDir, 'bpf_lxc.o'), { ...sized, programs: ['from_container', 'to_container'] });
    this.lxc.load();
    this.resized = this.lxc.resized;
    this.overlay = BpfObject.open(join(c.bpfDir, 'bpf_overlay.o'), { ...sized, programs: ['from_overlay'] });
    this.overlay.load();
    this.host = BpfObject.open(join(c.bpfDir, 'bpf_host.o'), { ...sized, programs: ['from_underlay'] });
    this.host.load();
    this.conntrack = new ConntrackTable({ ct: this.lxc.map(MapName.ct), count: this.lxc.map(MapName.ctCount), stats: this.lxc.map(MapName.ctStats) });
    await this.migrateConntrack();
    // Pins of maps an earlier layout used (renamed since): programs still attached keep such a map
    // alive until they are replaced; nothing reads it afterwards.
    for (const name of RetiredMapNames) if (existsSync(join(c.pinRoot, name))) unlinkSync(join(c.pinRoot, name));
    this.maps = {
      ipcache: this.lxc.map(MapName.ipcache),
      nodes: this.lxc.map(MapName.nodes),
      endpoints: this.lxc.map(MapName.endpoints),
      policy: this.lxc.map(MapName.policy),
      policyCidrs: this.lxc.map(MapName.policyCidrs),
      ct: this.lxc.map(MapName.ct),
      config: this.lxc.map(MapName.config),
      events: this.lxc.map(MapName.events),
      eventsLost: this.lxc.map(MapName.eventsLost),
      lbServices: this.lxc.map(MapName.lbServices),
      lbBackends: this.lxc.map(MapName.lbBackends),
    };
    const key = Buffer.alloc(4);
    // An ipcache left incomplete by the previous run, or shrunk just now, stays distrusted until a sync completes it.
    const prevFlags = this.maps.config.lookup(key)?.readUInt32LE(16) ?? 0;
    const incomplete = (prevFlags & NODE_F_IPCACHE_INCOMPLETE) !== 0 || this.resized.some((r) => r.map === MapName.ipcache && r.dropped > 0);
    this.ipcache = new IpcacheWriter(this.maps.ipcache, (on) => this.setIpcacheIncomplete(on), this.log.child({ component: 'ipcache' }), incomplete);
    this.policy = new PolicyMapWriter({ endpoints: this.maps.endpoints, policy: this.maps.policy }, this.log.child({ component: 'policy-map' }));
    this.loadMirrors();
    // Exactly the frontends the maps hold (a map new to this version starts empty), before any program of this load runs.
    this.lbVips = new LbVipFilter(this.lxc.map(MapName.lbVips));
    this.lbVips.rebuild(this.lbVipsInOrder());
    const tunnelIfindex = await this.ensureTunnel();
    const underlay = this.options.underlay === false ? undefined : await this.underlayDevice();
    const strictIngress = c.encryption === 'wireguard' && c.encryptionStrict;
    const tunnelPort = c.routing === 'vxlan' ? c.vxlanPort : c.routing === 'geneve' ? GENEVE_PORT : 0;
    const flags = (c.audit ? NODE_F_AUDIT : 0) | (strictIngress ? NODE_F_STRICT_INGRESS : 0) | (incomplete ? NODE_F_IPCACHE_INCOMPLETE : 0);
    const ct = conntrackConfig(c);
    const conntrack = { quota: ct.maxEntriesPerEndpoint, tcpSyn: ct.tcpSynTimeoutSec, tcpEstablished: ct.tcpEstablishedTimeoutSec, tcpClose: ct.tcpCloseTimeoutSec, udp: ct.udpTimeoutSec, icmp: ct.icmpTimeoutSec };
    this.nodeConfig = { nodeIp: ipv4ToInt(c.nodeIp), tunnelIfindex, routingMode: c.routing === 'direct' ? ROUTING_DIRECT : ROUTING_TUNNEL, clusterId: c.clusterId, flags, tunnelPort, conntrack };
    this.maps.config.update(key, encodeNodeConfig(this.nodeConfig));
    if (c.routing !== 'direct') attachTc({ ifindex: tunnelIfindex, direction: 'ingress', programFd: this.overlay.programFd('from_overlay') });
    // After the config: the program reads the tunnel port and routing mode from it. In every
    // encryption mode: without it anyone on the underlay could hand the tunnel a VNI.
    if (underlay) {
      attachTc({ ifindex: underlay.ifindex, ...UNDERLAY_TC, programFd: this.host.programFd('from_underlay') });
      this.filteredUnderlay = underlay.ifname;
    }
    this.reader = new RingBufferReader(this.maps.events.fd);
    this.reader.start(
      (data) => {
        const f = decodeFlowEvent(data);
        const sample: FlowSample = {
          timestampNs: f.timestampNs,
          srcIdentity: f.srcIdentity,
          dstIdentity: f.dstIdentity,
          saddr: this.addresses.format(f.saddr),
          daddr: this.addresses.format(f.daddr),
          sport: f.sport,
          dport: f.dport,
          protocol: f.protocol,
          verdict: f.verdict,
          dropReason: f.dropReason,
          point: f.point,
          epId: f.epId,
          flags: f.flags,
          length: f.length,
          ruleId: f.ruleId,
          tcpFlags: f.tcpFlags,
          serviceAddr: f.serviceAddr ? this.addresses.format(f.serviceAddr) : undefined,
          servicePort: f.servicePort,
        };
        for (const l of this.listeners) l(sample);
      },
      // A bad event costs that event, never the agent.
      { onError: (err: unknown) => this.log.warn({ err: (err as Error).message }, 'dropped a flow event that could not be handled') },
    );
    this.log.info({ pinRoot: c.pinRoot, tunnelIfindex, underlay: underlay?.ifname, strictIngress, ipcache: this.ipcache.status().entries, resized: this.resized }, 'datapath loaded');
  }

  /** Rewrites the node config with NODE_F_IPCACHE_INCOMPLETE set or cleared (only the flags word changes). */
  private setIpcacheIncomplete(on: boolean): void {
    const flags = on ? this.nodeConfig.flags | NODE_F_IPCACHE_INCOMPLETE : this.nodeConfig.flags & ~NODE_F_IPCACHE_INCOMPLETE;
    if (flags === this.nodeConfig.flags) return;
    this.nodeConfig = { ...this.nodeConfig, flags };
    this.maps.config.update(Buffer.alloc(4), encodeNodeConfig(this.nodeConfig));
    this.log.warn({ incomplete: on }, on ? 'ipcache incomplete: enforcing endpoints drop peers without an exact entry' : 'ipcache complete');
  }

  ipcacheStatus(): IpcacheStatus {
    return this.ipcache.status();
  }

  mapStatus(): MapStatus[] {
    let slots = 0;
    for (const backends of this.lbOrder.values()) slots += backends.length;
    const used: Partial<Record<SizedMap, number>> = {
      ipcache: this.ipcache.status().entries,
      endpoints: this.policy.endpointCount,
      policy: this.policy.entryCount,
      ct: this.conntrackEntries(),
      lbServices: this.lbOrder.size + slots,
      lbBackends: slots,
    };
    return (Object.keys(SIZED_MAPS) as SizedMap[]).map((k) => {
      const map = this.maps[k];
      const row: MapStatus = { name: map.name, maxEntries: map.maxEntries };
      if (used[k] !== undefined) row.entries = used[k];
      const r = this.resized.find((x) => x.map === map.name);
      if (r) row.resized = { from: r.from, copied: r.copied, dropped: r.dropped };
      return row;
    });
  }

  /** An upgrade from weft_ct_v2: its live connections move into the new table before any program is swapped. */
  private async migrateConntrack(): Promise<void> {
    const path = join(this.config.pinRoot, 'weft_ct_v2');
    if (!existsSync(path)) return;
    const ct = conntrackConfig(this.config);
    const sec = (n: number): bigint => BigInt(n) * 1_000_000_000n;
    const lifetime = (protocol: number): bigint => sec(protocol === IPPROTO_TCP ? ct.tcpEstablishedTimeoutSec : protocol === IPPROTO_ICMP ? ct.icmpTimeoutSec : ct.udpTimeoutSec);
    let legacy: BpfMap | undefined;
    try {
      legacy = BpfMap.openPinned(path);
      const copied = await this.conntrack.migrateLegacy(legacy, lifetime);
      this.log.info({ copied, from: 'weft_ct_v2', to: MapName.ct }, 'conntrack entries of the previous layout carried over');
    } catch (err) {
      // Costs the old connections (their next packets are new ones, judged by policy), never the start.
      this.log.warn({ err: (err as Error).message }, 'cannot carry over the conntrack entries of the previous layout');
    } finally {
      legacy?.close();
    }
  }

  clearIngressFilter(): string | undefined {
    return this.filteredUnderlay;
  }

  async stop(): Promise<void> {
    this.reader?.stop();
    // Programs stay attached and maps stay pinned: traffic keeps flowing while the agent is away.
    this.lxc?.close();
    this.overlay?.close();
    this.host?.close();
  }

  async uninstall(endpointDevices: readonly string[]): Promise<string[]> {
    const c = this.config;
    const removed: string[] = [];
    await this.stop();
    // The endpoints' host-side veths are the pods' (they stay with them): only the programs go.
    for (const dev of endpointDevices) {
      const ifindex = ifindexOf(dev);
      if (ifindex !== undefined && destroyTcHook(ifindex)) removed.push(`tc programs of ${dev}`);
    }
    // The underlay device is not Weft's: only its own filter goes, by its handle.
    const underlay = this.filteredUnderlay && ifindexOf(this.filteredUnderlay);
    if (underlay && detachTc({ ifindex: underlay, ...UNDERLAY_TC })) removed.push(`from_underlay on ${this.filteredUnderlay}`);
    if (c.routing !== 'direct' && (await this.ip.link(c.tunnelDevice))) {
      await this.ip.deleteLink(c.tunnelDevice);
      removed.push(`link ${c.tunnelDevice}`);
    }
    // Unpinned maps live on only while a program holds them; none is attached any more.
    if (existsSync(c.pinRoot)) {
      rmSync(c.pinRoot, { recursive: true });
      removed.push(`pins ${c.pinRoot}`);
      // The default layout's /sys/fs/bpf/weft, once no node of the machine has pins in it.
      const parent = dirname(c.pinRoot);
      if (basename(parent) === 'weft' && readdirSync(parent).length === 0) rmdirSync(parent);
    }
    this.log.info({ removed }, 'datapath uninstalled');
    return removed;
  }

  onFlow(listener: (flow: FlowSample) => void): void {
    this.listeners.push(listener);
  }

  async flowEventsLost(): Promise<bigint> {
    const v = this.maps.eventsLost.lookup(Buffer.alloc(4));
    return v ? decodeFlowEventsLost(v) : 0n;
  }

  /**
   * The underlay device: the configured one, else the one holding the node IP. The node cannot run
   * without it (tunnel packets and pod addresses arriving there would go unchecked), so its absence
   * is fatal.
   */
  private async underlayDevice(): Promise<{ ifindex: number; ifname: string }> {
    const c = this.config;
    const link = c.underlayDevice ? await this.ip.link(c.underlayDevice) : await this.ip.deviceWithAddress(c.nodeIp);
    if (!link) {
      throw new AgentConfigError(`for ${c.cluster}/${c.node}`, c.underlayDevice
        ? `underlayDevice: ${JSON.stringify(c.underlayDevice)} does not exist (from_underlay guards tunnel and pod traffic arriving there)`
        : `underlayDevice: no interface holds nodeIp ${c.nodeIp}; name the underlay device (from_underlay guards tunnel and pod traffic arriving there)`);
    }
    return link;
  }

  /** The collect-metadata tunnel device: the programs set each packet's remote node and VNI. */
  private async ensureTunnel(): Promise<number> {
    const c = this.config;
    if (c.routing === 'direct') return 0;
    let link = await this.ip.link(c.tunnelDevice);
    if (!link) {
      if (c.routing === 'vxlan') await this.ip.addVxlanExternal(c.tunnelDevice, { dstport: c.vxlanPort, mtu: c.underlayMtu });
      else {
        try {
          await this.ip.run(['link', 'add', c.tunnelDevice, 'mtu', String(c.underlayMtu), 'type', 'geneve', 'external']);
        } catch (err) {
          throw new Error(`Cannot create the Geneve device ${c.tunnelDevice}: this kernel has no Geneve support (use routing vxlan): ${(err as Error).message}`);
        }
      }
      link = await this.ip.link(c.tunnelDevice);
    }
    await this.ip.setUp(c.tunnelDevice);
    return link!.ifindex;
  }

  private loadMirrors(): void {
    this.ipcache.load();
    const loaded = this.policy.load();
    if (loaded.orphans > 0) this.log.info(loaded, 'deleted policy entries no endpoint looks up (a generation not in force, endpoints gone)');
    for (const [k, v] of this.maps.policyCidrs.entries()) {
      const e = decodePolicyCidr(k, v);
      this.policyCidrsMirror.set(formatCidr({ addr: e.ip, bits: e.prefixlen }), e.identity);
    }
    for (const [k, v] of this.maps.nodes.entries()) this.nodesMirror.set(intToIpv4(decodeNodeAddress(k, v).addr), v.toString('hex'));
    const slotsOf = new Map<string, Map<number, string>>();
    for (const [k, v] of this.maps.lbServices.entries()) {
      const e = decodeLb(k, v);
      const fkey = `${e.vip}/${e.port}/${e.protocol}`;
      if (e.slot === 0) {
        if (!slotsOf.has(fkey)) slotsOf.set(fkey, new Map());
        continue;
      }
      const m = slotsOf.get(fkey) ?? new Map<number, string>();
      m.set(e.slot, `${intToIpv4(e.addr)}:${e.backendPort}`);
      slotsOf.set(fkey, m);
    }
    // A restarted agent keeps the slots the kernel holds (so established connections keep their backends).
    for (const [fkey, m] of slotsOf) this.lbOrder.set(fkey, [...m.keys()].sort((a, b) => a - b).map((i) => m.get(i)!));
  }

  async syncIpcache(entries: readonly IpcacheUpsert[]): Promise<IpcacheSyncResult> {
    return this.ipcache.sync(entries);
  }

  async updateIpcache(changes: ReadonlyArray<{ cidr: string; entry: IpcacheUpsert | undefined }>): Promise<IpcacheSyncResult> {
    return this.ipcache.apply(changes);
  }

  async syncPolicyCidrs(cidrs: ReadonlyArray<{ cidr: string; id: number }>, mode: 'add' | 'exact'): Promise<void> {
    const want = new Map(cidrs.map((c) => [c.cidr, c.id]));
    for (const [cidr, id] of want) {
      if (this.policyCidrsMirror.get(cidr) === id) continue;
      const c = parseCidr(cidr) as Cidr; // the policy parser accepted it
      const { key, value } = encodePolicyCidr(c.addr, c.bits, id);
      this.maps.policyCidrs.update(key, value);
      this.policyCidrsMirror.set(cidr, id);
    }
    if (mode === 'add') return;
    for (const cidr of [...this.policyCidrsMirror.keys()]) {
      if (want.has(cidr)) continue;
      const c = parseCidr(cidr) as Cidr;
      this.maps.policyCidrs.delete(encodePolicyCidr(c.addr, c.bits, 0).key);
      this.policyCidrsMirror.delete(cidr);
    }
  }

  async syncNodes(entries: readonly NodeAddressUpsert[]): Promise<{ added: number; updated: number; removed: number }> {
    const want = new Map<string, Buffer>();
    for (const e of entries) {
      const v = Buffer.alloc(NODE_INFO.size);
      encodeNodeInfo(v, 0, { nodeIp: ipv4ToInt(e.nodeIp), routerIp: e.routerIp ? ipv4ToInt(e.routerIp) : 0, clusterId: e.clusterId, flags: e.flags });
      want.set(e.addr, v);
    }
    let added = 0;
    let updated = 0;
    let removed = 0;
    for (const [addr, v] of want) {
      const prev = this.nodesMirror.get(addr);
      const hex = v.toString('hex');
      if (prev === hex) continue;
      this.maps.nodes.update(encodeNodeKey(ipv4ToInt(addr)), v);
      this.nodesMirror.set(addr, hex);
      if (prev === undefined) added++;
      else updated++;
    }
    for (const addr of [...this.nodesMirror.keys()]) {
      if (want.has(addr)) continue;
      this.maps.nodes.delete(encodeNodeKey(ipv4ToInt(addr)));
      this.nodesMirror.delete(addr);
      removed++;
    }
    return { added, updated, removed };
  }

  async dumpNodes(): Promise<NodeAddressUpsert[]> {
    const out: NodeAddressUpsert[] = [];
    for (const [k, v] of this.maps.nodes.entries()) {
      const e = decodeNodeAddress(k, v);
      const row: NodeAddressUpsert = { addr: intToIpv4(e.addr), nodeIp: intToIpv4(e.nodeIp), clusterId: e.clusterId, flags: e.flags };
      if (e.routerIp) row.routerIp = intToIpv4(e.routerIp);
      out.push(row);
    }
    return out.sort((a, b) => ipv4ToInt(a.addr) - ipv4ToInt(b.addr));
  }

  /**
   * Slots are stable: a backend keeps its slot while it stays, a leaving one's
   * slot is taken by a newcomer or by the last backend, so one backend leaving
   * a 10k-backend service rewrites two entries, not 10k. Only changed entries
   * are encoded, into one batch per step; `lbOrder` is the mirror.
   */
  async syncServices(services: readonly ServiceProgram[]): Promise<{ frontends: number; changed: number }> {
    const wanted = new Set(services.map((s) => lbFrontendKey(lbFrontend(s))));
    return this._writeServices(services, [...this.lbOrder.keys()].filter((k) => !wanted.has(k)));
  }

  async updateServices(services: readonly ServiceProgram[], removed: readonly ServiceFrontendRef[]): Promise<{ frontends: number; changed: number }> {
    const written = new Set(services.map((s) => lbFrontendKey(lbFrontend(s))));
    return this._writeServices(services, removed.map((r) => lbFrontendKey(lbFrontend(r))).filter((k) => this.lbOrder.has(k) && !written.has(k)));
  }

  /** Writes `services` (each frontend's whole backend list, differences only) and removes the frontends `removedFrontends` (keys of lbOrder). */
  private _writeServices(services: readonly ServiceProgram[], removedFrontends: readonly string[]): { frontends: number; changed: number } {
    /** A backend placed in a slot it did not hold: its slot entry and its membership are written. */
    const placedWrites: Array<[LbFrontend, number, number, number]> = [];
    const masterWrites: Array<[LbFrontend, number]> = [];
    const slotDeletes: Array<[LbFrontend, number]> = [];
    const memberDeletes: Array<[LbFrontend, string]> = [];
    const order = new Map<string, string[]>();
    const frontendOf = new Map<string, LbFrontend>();
    for (const s of services) {
      const f = lbFrontend(s);
      const fkey = lbFrontendKey(f);
      const prev = this.lbOrder.get(fkey);
      const wanted = s.backends.map((b) => `${b.ip}:${b.port}`);
      const placed = stableSlots(prev ?? [], wanted);
      order.set(fkey, placed);
      frontendOf.set(fkey, f);
      const before = prev ?? [];
      /** `ip:port` -> the backend, made only when some backend is placed anew. */
      let byName: Map<string, ServiceProgram['backends'][number]> | undefined;
      for (let i = 0; i < placed.length; i++) {
        const b = placed[i]!;
        if (before[i] === b) continue;
        byName ??= new Map(wanted.map((name, j) => [name, s.backends[j]!]));
        const backend = byName.get(b)!;
        placedWrites.push([f, i + 1, ipv4ToInt(backend.ip), backend.port]);
      }
      if (!prev || prev.length !== placed.length) masterWrites.push([f, placed.length]);
      for (let i = placed.length; i < before.length; i++) slotDeletes.push([f, i + 1]);
      if (before.length > 0) {
        const now = new Set(placed);
        for (const b of before) if (!now.has(b)) memberDeletes.push([f, b]);
      }
    }
    const split = (b: string): [number, number] => {
      const i = b.lastIndexOf(':');
      return [ipv4ToInt(b.slice(0, i)), Number(b.slice(i + 1))];
    };
    /** Encodes `n` entries straight into one zeroed key and one value buffer, written in one batch. */
    const batch = (map: BpfMap, n: number, keySize: number, valueSize: number, fill: (keys: Buffer, values: Buffer, i: number) => void): void => {
      if (n === 0) return;
      const keys = Buffer.alloc(n * keySize);
      const values = Buffer.alloc(n * valueSize);
      for (let i = 0; i < n; i++) fill(keys, values, i);
      map.updateBatch(keys, values, n);
    };
    // Addresses before the frontends (lb_egress skips an address without its bit); backends before the
    // counts that reach them; counts down before the slots beyond them go.
    this.lbVips.admit([...frontendOf.values()].map((f) => f.vip));
    batch(this.maps.lbServices, placedWrites.length, LB_KEY.size, LB_VALUE.size, (keys, values, i) => {
      const [f, slot, addr, port] = placedWrites[i]!;
      encodeLbKeyInto(keys, i * LB_KEY.size, f, slot);
      encodeLbValueInto(values, i * LB_VALUE.size, addr, port, 0);
    });
    batch(this.maps.lbBackends, placedWrites.length, LB_BACKEND_KEY.size, 4, (keys, values, i) => {
      const [f, slot, addr, port] = placedWrites[i]!;
      encodeLbBackendKeyInto(keys, i * LB_BACKEND_KEY.size, f, addr, port);
      values.writeUInt32LE(slot, i * 4);
    });
    batch(this.maps.lbServices, masterWrites.length, LB_KEY.size, LB_VALUE.size, (keys, values, i) => {
      const [f, count] = masterWrites[i]!;
      encodeLbKeyInto(keys, i * LB_KEY.size, f, 0);
      encodeLbValueInto(values, i * LB_VALUE.size, 0, 0, count);
    });
    for (const fkey of removedFrontends) {
      const [vip, port, protocol] = fkey.split('/').map(Number) as [number, number, number];
      const f: LbFrontend = { vip, port, protocol };
      this.maps.lbServices.delete(encodeLbKey(f, 0));
      this.lbOrder.get(fkey)!.forEach((b, i) => {
        slotDeletes.push([f, i + 1]);
        memberDeletes.push([f, b]);
      });
    }
    for (const [f, slot] of slotDeletes) this.maps.lbServices.delete(encodeLbKey(f, slot));
    for (const [f, b] of memberDeletes) {
      const [addr, port] = split(b);
      this.maps.lbBackends.delete(encodeLbBackendKey(f, addr, port));
    }
    for (const [fkey, placed] of order) this.lbOrder.set(fkey, placed);
    for (const fkey of removedFrontends) this.lbOrder.delete(fkey);
    // Bits only of frontends that remain, once the others are gone.
    if (removedFrontends.length > 0) this.lbVips.rebuild(this.lbVipsInOrder());
    const changed = 2 * placedWrites.length + masterWrites.length + removedFrontends.length + slotDeletes.length + memberDeletes.length;
    return { frontends: this.lbOrder.size, changed };
  }

  /** The address of every frontend the maps hold. */
  private lbVipsInOrder(): number[] {
    return [...this.lbOrder.keys()].map((fkey) => Number(fkey.slice(0, fkey.indexOf('/'))));
  }

  async dumpServices(): Promise<ServiceProgram[]> {
    const byFrontend = new Map<string, { vip: string; port: number; protocol: 'TCP' | 'UDP'; count: number; slots: Map<number, { ip: string; port: number }> }>();
    for (const [k, v] of this.maps.lbServices.entries()) {
      const e = decodeLb(k, v);
      const id = `${e.vip}/${e.port}/${e.protocol}`;
      const f = byFrontend.get(id) ?? { vip: intToIpv4(e.vip), port: e.port, protocol: e.protocol === IPPROTO_TCP ? 'TCP' : 'UDP', count: 0, slots: new Map() };
      if (e.slot === 0) f.count = e.count;
      else f.slots.set(e.slot, { ip: intToIpv4(e.addr), port: e.backendPort });
      byFrontend.set(id, f);
    }
    return [...byFrontend.values()].map((f) => ({
      vip: f.vip,
      port: f.port,
      protocol: f.protocol,
      backends: Array.from({ length: f.count }, (_, i) => f.slots.get(i + 1)).filter((b): b is { ip: string; port: number } => b !== undefined),
    }));
  }

  async programEndpoint(ep: EndpointProgram, entries: readonly PolicyMapEntry[], policyRev: number): Promise<EndpointPolicyOutcome> {
    const ifindex = ifindexOf(ep.ifname);
    if (ifindex === undefined) throw new EndpointProgramError('program', ep.ip, `interface ${ep.ifname} does not exist`);
    const outcome = this.policy.program(
      { epId: ep.epId, ip: ipv4ToInt(ep.ip), ifindex, identity: ep.identity, mac: ep.mac, nodeMac: ep.nodeMac, ingressEnforced: ep.ingressEnforced, egressEnforced: ep.egressEnforced, audit: ep.audit },
      entries,
      policyRev,
    );
    // Also when failed closed: the programs are what drops its traffic.
    attachTc({ ifindex, direction: 'ingress', programFd: this.lxc!.programFd('from_container') });
    attachTc({ ifindex, direction: 'egress', programFd: this.lxc!.programFd('to_container') });
    return outcome;
  }

  async updateEndpointPolicy(ep: EndpointProgram, changes: PolicyMapChanges, policyRev: number): Promise<EndpointPolicyOutcome> {
    const ifindex = ifindexOf(ep.ifname);
    if (ifindex === undefined) throw new EndpointProgramError('update the policy of', ep.ip, `interface ${ep.ifname} does not exist`);
    return this.policy.update(
      { epId: ep.epId, ip: ipv4ToInt(ep.ip), ifindex, identity: ep.identity, mac: ep.mac, nodeMac: ep.nodeMac, ingressEnforced: ep.ingressEnforced, egressEnforced: ep.egressEnforced, audit: ep.audit },
      changes,
      policyRev,
    );
  }

  async removeEndpoint(ip: string, epId: number): Promise<void> {
    this.policy.remove(ipv4ToInt(ip), epId);
    // The endpoint is gone from the maps: from here on no program makes entries for it.
    const r = await this.conntrack.flushEndpoint(ip, epId);
    this.log.info({ endpoint: epId, ip, flushed: r.flushed, expired: r.expired, durationMs: r.durationMs }, 'conntrack entries of the endpoint flushed');
  }

  sweepConntrack(): Promise<ConntrackSweep> {
    return this.conntrack.sweep();
  }

  async conntrackStatus(): Promise<ConntrackStatus> {
    const { dropsFull, dropsQuota } = this.conntrack.stats();
    return { capacity: this.conntrack.capacity, byEndpoint: this.conntrack.counts(), dropsFull, dropsQuota };
  }

  /** Entries in the conntrack table, by the per-endpoint counts (no walk). */
  private conntrackEntries(): number {
    let n = 0;
    for (const c of this.conntrack.counts().values()) n += Math.max(0, c);
    return n;
  }

  async highestPolicyRevision(): Promise<number> {
    let max = 0;
    for (const [k, v] of this.maps.endpoints.entries()) max = Math.max(max, decodeEndpoint(k, v).policyRev);
    return max;
  }

  async dumpIpcache(): Promise<Array<{ cidr: string; identity: number; tunnelIp?: string; flags: number }>> {
    const out: Array<{ cidr: string; identity: number; tunnelIp?: string; flags: number }> = [];
    for (const [k, v] of this.maps.ipcache.entries()) {
      const e = decodeIpcache(k, v);
      const row: { cidr: string; identity: number; tunnelIp?: string; flags: number } = { cidr: `${intToIpv4(e.ip)}/${e.prefixlen}`, identity: e.identity, flags: e.flags };
      if (e.tunnelIp) row.tunnelIp = intToIpv4(e.tunnelIp);
      out.push(row);
    }
    return out.sort((a, b) => (a.cidr < b.cidr ? -1 : 1));
  }

  async dumpPolicy(epId: number): Promise<Array<PolicyMapEntry & { packets: bigint; bytes: bigint }>> {
    const out: Array<PolicyMapEntry & { packets: bigint; bytes: bigint }> = [];
    const gen = this.policy.generation(epId);
    for (const [k, v] of this.maps.policy.entries()) {
      const p = decodePolicy(k, v);
      if (p.epId !== epId || p.gen !== gen) continue;
      const row: PolicyMapEntry & { packets: bigint; bytes: bigint } = { egress: p.egress, identity: p.identity, protocol: p.protocol, deny: p.deny, ruleId: p.ruleId, packets: p.packets, bytes: p.bytes };
      if (p.port !== undefined) row.port = { port: p.port, bits: p.portBits ?? 16 };
      out.push(row);
    }
    return out;
  }
}

function lbFrontend(s: ServiceFrontendRef): LbFrontend {
  return { vip: ipv4ToInt(s.vip), port: s.port, protocol: s.protocol === 'TCP' ? IPPROTO_TCP : IPPROTO_UDP };
}

/** The key of `lbOrder` (the frontend as the map holds it, so one loaded from pinned maps matches). */
function lbFrontendKey(f: LbFrontend): string {
  return `${f.vip}/${f.port}/${f.protocol}`;
}

/** Dotted strings of IPv4 addresses, kept for the addresses seen last (at most 4,096). */
class AddressStrings {
  private readonly strings = new Map<number, string>();

  format(addr: number): string {
    let s = this.strings.get(addr);
    if (s === undefined) {
      if (this.strings.size >= 4096) this.strings.clear();
      s = intToIpv4(addr);
      this.strings.set(addr, s);
    }
    return s;
  }
}
