/**
 * EndpointManager: pods on this node. A pod is a network namespace joined to
 * the node by a veth pair; adding one assigns its IP, resolves its identity
 * from pod and namespace labels, wires the veth, programs the datapath and
 * publishes the endpoint to the cluster. Deletion undoes all of it and is
 * idempotent (a CNI DEL may come twice, or for a pod half set up).
 *
 * Endpoints are saved to the state directory so a restarted agent adopts its
 * pods without touching their traffic.
 *
 * Endpoint ids are handed out forward (the next after the last one, wrapping
 * at 65535), never lowest-first: a just-freed id is the last to be reused, so
 * nothing the datapath keys by endpoint id (conntrack entries, policy map
 * entries) can be mistaken for a new pod's. The last id is saved with the
 * endpoints, so a restart keeps the property.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Logger } from '@weft/common';
import { workloadLabels, type IdentityAllocator } from '@weft/identity';
import type { KvClient } from '@weft/kvstore';
import { Ip } from '@weft/net';
import type { ResourceSource } from '@weft/resources';
import { netnsNameOf, netnsPathProblem, quote, type CniArgs } from './cni-args.js';
import type { AgentConfig } from './config.js';
import { podMtu } from './config.js';
import type { Datapath } from './datapath-port.js';
import { CniRequestError, EndpointNotFoundError } from './errors.js';
import type { Ipam } from './ipam.js';
import { endpointKey, type EndpointRecord } from './state.js';

/** The pods' gateway: a link-local address answered by a static neighbor entry. */
export const POD_GATEWAY = '169.254.1.1';

export interface Endpoint {
  epId: number;
  containerId: string;
  namespace: string;
  pod: string;
  ip: string;
  /** Host-side veth in the node namespace. */
  hostIf: string;
  podIf: string;
  netns: string;
  identity: number;
  labels: Record<string, string>;
  mac: string;
  nodeMac: string;
}

export type { CniArgs } from './cni-args.js';

export interface EndpointManagerDeps {
  config: AgentConfig;
  kv: KvClient;
  leaseId: () => string;
  allocator: IdentityAllocator;
  resources: ResourceSource;
  ipam: Ipam;
  datapath: Datapath;
  /** Called when endpoints change, so policy is recomputed. */
  onChange: (ep: Endpoint, removed: boolean) => Promise<void>;
  log: Logger;
}

export class EndpointManager {
  private readonly byContainer = new Map<string, Endpoint>();
  private readonly stateFile: string;
  private readonly ids: EndpointIds;
  private readonly ip = new Ip();

  constructor(private readonly d: EndpointManagerDeps) {
    this.stateFile = join(d.config.stateDir, 'endpoints.json');
    this.ids = new EndpointIds(join(d.config.stateDir, 'endpoint-ids.json'));
  }

  list(): Endpoint[] {
    return [...this.byContainer.values()].sort((a, b) => a.epId - b.epId);
  }

  find(ref: string): Endpoint {
    const [ns, pod] = ref.includes('/') ? ref.split('/', 2) : ['default', ref];
    const ep = this.list().find((e) => String(e.epId) === ref || e.ip === ref || (e.namespace === ns && e.pod === pod));
    if (!ep) throw new EndpointNotFoundError(ref);
    return ep;
  }

  /** Endpoints saved by a previous run of the agent on this node. */
  restore(): Endpoint[] {
    try {
      const saved = JSON.parse(readFileSync(this.stateFile, 'utf8')) as Endpoint[];
      for (const ep of saved) this.byContainer.set(ep.containerId, ep);
      return saved;
    } catch {
      return [];
    }
  }

  /** Re-publishes and re-programs restored endpoints (after an agent restart). */
  async readopt(ep: Endpoint): Promise<void> {
    const alloc = await this.d.allocator.allocate(workloadLabels({ cluster: this.d.config.cluster, namespace: ep.namespace, labels: ep.labels, namespaceLabels: await this.namespaceLabels(ep.namespace) }));
    ep.identity = alloc.id;
    await this.publish(ep);
    await this.d.onChange(ep, false);
  }

  async add(args: CniArgs): Promise<Endpoint> {
    const existing = this.byContainer.get(args.containerId);
    if (existing) return existing;
    const pod = await this.d.resources.get<unknown>('Pod', args.pod, args.namespace);
    if (!pod) throw new CniRequestError(100, `Unknown pod ${args.namespace}/${args.pod}: no Pod resource in cluster ${this.d.config.cluster} (apply it first)`);
    const nsName = netnsName(args.netnsPath);
    const labels = pod.metadata.labels;
    const alloc = await this.d.allocator.allocate(workloadLabels({ cluster: this.d.config.cluster, namespace: args.namespace, labels, namespaceLabels: await this.namespaceLabels(args.namespace) }));
    const owner = `${args.namespace}/${args.pod}/${args.containerId}`;
    const ip = this.d.ipam.allocate(owner);
    const hash = createHash('sha1').update(args.containerId).digest('hex');
    const hostIf = `lxc${hash.slice(0, 11)}`;
    const tmpIf = `tmp${hash.slice(0, 11)}`;
    const ep: Endpoint = {
      epId: this.nextEpId(),
      containerId: args.containerId,
      namespace: args.namespace,
      pod: args.pod,
      ip,
      hostIf,
      podIf: args.ifname,
      netns: nsName,
      identity: alloc.id,
      labels,
      mac: '',
      nodeMac: '',
    };
    try {
      await this.wire(ep, tmpIf);
      this.byContainer.set(ep.containerId, ep);
      await this.d.onChange(ep, false); // programs the datapath with its policy before the pod can send
      await this.publish(ep);
      this.save();
      this.d.log.info({ endpoint: `${ep.namespace}/${ep.pod}`, ip, identity: ep.identity, ep: ep.epId }, 'endpoint added');
      return ep;
    } catch (err) {
      // Nothing half-applied: undo what was done.
      this.byContainer.delete(ep.containerId);
      await this.ip.deleteLink(hostIf).catch(() => undefined);
      this.d.ipam.release(owner);
      await this.d.allocator.release(alloc.labels).catch(() => undefined);
      throw err instanceof CniRequestError ? err : new CniRequestError(5, `Cannot set up pod ${args.namespace}/${args.pod}: ${(err as Error).message}`, { cause: err });
    }
  }

  async del(containerId: string): Promise<void> {
    const ep = this.byContainer.get(containerId);
    if (!ep) return;
    await this.d.kv.delete(endpointKey(this.d.config.node, ep.ip)).catch((err: Error) => this.d.log.warn({ err: err.message }, 'could not remove endpoint record; it goes with the lease'));
    this.byContainer.delete(containerId);
    await this.d.onChange(ep, true);
    await this.d.datapath.removeEndpoint(ep.ip, ep.epId);
    await this.ip.deleteLink(ep.hostIf);
    this.d.ipam.release(`${ep.namespace}/${ep.pod}/${ep.containerId}`);
    await this.d.allocator
      .release(workloadLabels({ cluster: this.d.config.cluster, namespace: ep.namespace, labels: ep.labels, namespaceLabels: await this.namespaceLabels(ep.namespace) }))
      .catch((err: Error) => this.d.log.warn({ err: err.message }, 'identity release failed'));
    this.save();
    this.d.log.info({ endpoint: `${ep.namespace}/${ep.pod}`, ip: ep.ip }, 'endpoint removed');
  }

  /** CNI CHECK: the endpoint exists and its veth is in place. */
  async check(containerId: string): Promise<Endpoint> {
    const ep = this.byContainer.get(containerId);
    if (!ep) throw new CniRequestError(3, `Unknown container ${containerId}`);
    if (!(await this.ip.link(ep.hostIf))) throw new CniRequestError(100, `Endpoint ${ep.namespace}/${ep.pod}: veth ${ep.hostIf} is missing`);
    return ep;
  }

  /** Wires the veth pair with as few processes as possible: pod start latency is mostly this. */
  private async wire(ep: Endpoint, tmpIf: string): Promise<void> {
    const mtu = String(podMtu(this.d.config));
    const podIp = new Ip(ep.netns);
    await this.ip.deleteLink(ep.hostIf);
    await this.ip.batch([
      ['link', 'add', ep.hostIf, 'mtu', mtu, 'type', 'veth', 'peer', 'name', tmpIf, 'mtu', mtu, 'netns', ep.netns],
      ['link', 'set', 'dev', ep.hostIf, 'up'],
    ]);
    await podIp.batch([
      ['link', 'set', 'dev', tmpIf, 'name', ep.podIf],
      ['addr', 'replace', `${ep.ip}/32`, 'dev', ep.podIf],
      ['link', 'set', 'dev', 'lo', 'up'],
      ['link', 'set', 'dev', ep.podIf, 'up'],
    ]);
    const [pod, host] = await Promise.all([podIp.link(ep.podIf), this.ip.link(ep.hostIf)]);
    ep.mac = pod!.address;
    ep.nodeMac = host!.address;
    // A static neighbor for the gateway: no ARP responder needed on the host side.
    await podIp.batch([
      ['neigh', 'replace', POD_GATEWAY, 'lladdr', ep.nodeMac, 'dev', ep.podIf, 'nud', 'permanent'],
      ['route', 'replace', POD_GATEWAY, 'dev', ep.podIf, 'scope', 'link'],
      ['route', 'replace', 'default', 'via', POD_GATEWAY, 'dev', ep.podIf, 'mtu', mtu],
    ]);
    // Kernel-routed traffic to the pod (direct routing, replies from outside).
    await this.ip.batch([
      ['neigh', 'replace', ep.ip, 'lladdr', ep.mac, 'dev', ep.hostIf, 'nud', 'permanent'],
      ['route', 'replace', `${ep.ip}/32`, 'dev', ep.hostIf, 'scope', 'link'],
    ]);
  }

  private async publish(ep: Endpoint): Promise<void> {
    const record: EndpointRecord = { ip: ep.ip, identity: ep.identity, node: this.d.config.node, nodeIp: this.d.config.nodeIp, namespace: ep.namespace, pod: ep.pod, labels: ep.labels };
    await this.d.kv.put(endpointKey(this.d.config.node, ep.ip), JSON.stringify(record), { lease: this.d.leaseId() });
  }

  /** Re-publishes every endpoint (after the agent's lease was renewed). */
  async republish(): Promise<void> {
    for (const ep of this.byContainer.values()) await this.publish(ep);
  }

  private async namespaceLabels(namespace: string): Promise<Record<string, string>> {
    const ns = await this.d.resources.get('Namespace', namespace);
    return ns?.metadata.labels ?? {};
  }

  private nextEpId(): number {
    return this.ids.next(new Set([...this.byContainer.values()].map((e) => e.epId)));
  }

  private save(): void {
    writeJsonAtomic(this.stateFile, this.list());
  }
}

/** Endpoint ids are 16 bits in the datapath; 0 means none. */
export const MAX_EP_ID = 65535;

/**
 * Endpoint ids handed out forward: the next free one after the last handed out, wrapping at
 * MAX_EP_ID, so a just-freed id is the last to come back. The last id is saved (before it is
 * used) in `file`, so this holds across agent restarts.
 */
export class EndpointIds {
  private last = 0;

  constructor(private readonly file: string) {
    try {
      const v = (JSON.parse(readFileSync(file, 'utf8')) as { lastEpId?: unknown }).lastEpId;
      if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_EP_ID) this.last = v;
    } catch {
      // First start: from 1. (An agent from before the cursor: `inUse` still rules out live ids.)
    }
  }

  /** The next id not in `inUse`. */
  next(inUse: ReadonlySet<number>): number {
    // Without a saved cursor (an older agent's state), never go below the ids in use.
    if (this.last === 0) for (const id of inUse) this.last = Math.max(this.last, id);
    for (let i = 1; i <= MAX_EP_ID; i++) {
      const id = ((this.last + i - 1) % MAX_EP_ID) + 1;
      if (inUse.has(id)) continue;
      this.last = id;
      writeJsonAtomic(this.file, { lastEpId: id });
      return id;
    }
    throw new CniRequestError(100, `No free endpoint id on this node (${MAX_EP_ID} endpoints)`);
  }
}

function writeJsonAtomic(file: string, value: unknown): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, JSON.stringify(value, null, 1));
  renameSync(tmp, file);
}

/** CNI passes a netns path; we work with named namespaces (/var/run/netns/<name>), by the rules of cni-args.ts. */
export function netnsName(path: string): string {
  const name = netnsNameOf(path);
  if (name === undefined) throw new CniRequestError(4, `Invalid CNI_NETNS ${quote(path)}: ${netnsPathProblem(path) ?? 'is not a named network namespace'}`);
  return name;
}

