/**
 * ClusterState: what the other nodes of the cluster publish (node records and
 * endpoint records), turned into this node's ipcache and, in direct-routing
 * mode, routes to the other nodes' pod CIDRs. Records are validated; a bad one
 * is skipped and counted, never programmed. When etcd is away the datapath
 * keeps its last state; the watches catch up when it returns.
 */
import { Coalescer, type Logger } from '@weft/common';
import { ReservedIdentity } from '@weft/identity';
import { PrefixWatcher, type KvClient } from '@weft/kvstore';
import { Ip } from '@weft/net';
import type { CidrIdentityView } from '@weft/policy';
import type { AgentConfig } from './config.js';
import type { Datapath, IpcacheUpsert } from './datapath-port.js';
import { ENDPOINTS_PREFIX, NODES_PREFIX, parseEndpointRecord, parseNodeRecord, type EndpointRecord, type NodeRecord } from './state.js';

const IPCACHE_F_LOCAL_ENDPOINT = 0x1;
const IPCACHE_F_REMOTE_NODE = 0x2;

export class ClusterState {
  readonly nodes = new Map<string, NodeRecord>();
  readonly endpoints = new Map<string, EndpointRecord>();
  readonly invalid = new Map<string, string>();
  private watchers: PrefixWatcher[] = [];
  private readonly syncer: Coalescer;
  private routes = new Map<string, string>();
  private readonly ip = new Ip();
  lastSync: { added: number; updated: number; removed: number; at: string } | undefined;

  constructor(
    private readonly config: AgentConfig,
    private readonly kv: KvClient,
    private readonly datapath: Datapath,
    private readonly cidrIdentities: () => CidrIdentityView[],
    private readonly log: Logger,
  ) {
    this.syncer = new Coalescer(() => this.sync(), 10, (err) => this.log.error({ err: err.message }, 'ipcache sync failed'));
  }

  async start(): Promise<void> {
    const nodes = new PrefixWatcher(this.kv, NODES_PREFIX, {
      onEvent: (e) => {
        const name = e.key.slice(NODES_PREFIX.length);
        if (e.type === 'delete') this.nodes.delete(name);
        else this.accept(e.key, parseNodeRecord(e.value, this.config.cluster), (r) => this.nodes.set(name, r));
        this.schedule();
      },
    }, { logger: this.log }).start();
    const endpoints = new PrefixWatcher(this.kv, ENDPOINTS_PREFIX, {
      onEvent: (e) => {
        const ip = e.key.slice(ENDPOINTS_PREFIX.length);
        if (e.type === 'delete') this.endpoints.delete(ip);
        else this.accept(e.key, parseEndpointRecord(e.value, this.config.clusterId), (r) => (r.ip === ip ? this.endpoints.set(ip, r) : this.invalid.set(e.key, `record ip ${r.ip} does not match its key`)));
        this.schedule();
      },
    }, { logger: this.log }).start();
    this.watchers = [nodes, endpoints];
    await Promise.all(this.watchers.map((w) => w.waitSynced()));
    this.schedule();
  }

  async stop(): Promise<void> {
    await Promise.all(this.watchers.map((w) => w.stop()));
    await this.syncer.stop();
  }

  private accept<T>(key: string, parsed: T | string, store: (r: T) => void): void {
    if (typeof parsed === 'string') {
      this.invalid.set(key, parsed);
      this.log.warn({ key, reason: parsed }, 'skipped invalid cluster record');
      return;
    }
    this.invalid.delete(key);
    store(parsed);
  }

  /** Resync the ipcache soon (changes arriving together are written together). */
  schedule(): void {
    this.syncer.schedule();
  }

  /** The ipcache this node should have now. */
  desired(): IpcacheUpsert[] {
    const out: IpcacheUpsert[] = [];
    const me = this.config.node;
    for (const n of this.nodes.values()) {
      out.push({ cidr: `${n.ip}/32`, identity: n.name === me ? ReservedIdentity.host : ReservedIdentity['remote-node'], flags: IPCACHE_F_REMOTE_NODE, clusterId: this.config.clusterId });
    }
    for (const e of this.endpoints.values()) {
      const local = e.node === me;
      const entry: IpcacheUpsert = { cidr: `${e.ip}/32`, identity: e.identity, flags: local ? IPCACHE_F_LOCAL_ENDPOINT : 0, clusterId: this.config.clusterId };
      if (!local) entry.tunnelIp = e.nodeIp;
      out.push(entry);
    }
    for (const c of this.cidrIdentities()) out.push({ cidr: c.cidr, identity: c.id, flags: 0, clusterId: 0 });
    return out;
  }

  private async sync(): Promise<void> {
    const result = await this.datapath.syncIpcache(this.desired());
    this.lastSync = { ...result, at: new Date().toISOString() };
    if (this.config.routing === 'direct') await this.syncRoutes();
  }

  private async syncRoutes(): Promise<void> {
    const want = new Map<string, string>();
    for (const n of this.nodes.values()) if (n.name !== this.config.node) want.set(n.podCidr, n.ip);
    for (const [cidr, via] of want) {
      if (this.routes.get(cidr) === via) continue;
      await this.ip.replaceRoute([cidr, 'via', via]);
      this.routes.set(cidr, via);
    }
    for (const cidr of [...this.routes.keys()]) {
      if (want.has(cidr)) continue;
      await this.ip.deleteRoute([cidr]);
      this.routes.delete(cidr);
    }
  }
}
