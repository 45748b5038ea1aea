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
 * An endpoint owns its chain: its labels are derived in one place
 * (endpointLabels: pod labels, namespace labels, cluster), from them its
 * identity, from that its policy and its maps. The manager watches Pods and
 * Namespaces; a label change regenerates exactly the endpoints it touches (a
 * new identity allocated, the endpoint's maps and record written with it, the
 * old identity released only then), and DEL releases the label set that was
 * allocated, saved with the endpoint, not what the namespace holds by then.
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
import { workloadLabels, type IdentityAllocator, type IdentityMove, type LabelSet } from '@weft/identity';
import type { KvClient } from '@weft/kvstore';
import { Ip } from '@weft/net';
import type { NamedPort } from '@weft/policy';
import type { PodSpec, ResourceSource, ResourceWatch } from '@weft/resources';
import { netnsNameOf, netnsPathProblem, quote, type CniArgs } from './cni-args.js';
import type { AgentConfig } from './config.js';
import { podMtu } from './config.js';
import type { Datapath } from './datapath-port.js';
import { CniRequestError, EndpointNotFoundError } from './errors.js';
import type { Ipam } from './ipam.js';
import { endpointKey, MAX_NAMED_PORTS, type EndpointRecord } from '@weft/schema';

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
  /** The pod's labels and its namespace's, as allocated: `identity` is the identity of endpointLabels() of these. */
  labels: Record<string, string>;
  namespaceLabels: Record<string, string>;
  /** Its containers' named ports (what a policy's `port: <name>` resolves to for this pod). */
  namedPorts?: NamedPort[];
  mac: string;
  nodeMac: string;
  /** The last regeneration (a label change), if there was one. */
  regeneration?: Regeneration;
}

/** Where an endpoint's last regeneration stands, for `weft endpoint list`. */
export interface Regeneration {
  /** regenerating: a new identity is being put in place; ready: done; failed: the old identity stays, retried. */
  state: 'regenerating' | 'ready' | 'failed';
  /** What changed: "pod labels" or "namespace labels" (or the identity moving under a lost lease). */
  reason: string;
  /** The identity before, and the one after (or wanted). */
  from: number;
  to?: number;
  at: string;
  error?: string;
  /** Regenerations of this endpoint since the agent started. */
  count: number;
}

/** The one derivation of an endpoint's identity labels: pod labels, namespace labels, namespace and cluster. */
export function endpointLabels(cluster: string, ep: Pick<Endpoint, 'namespace' | 'labels' | 'namespaceLabels'>): LabelSet {
  return workloadLabels({ cluster, namespace: ep.namespace, labels: ep.labels, namespaceLabels: ep.namespaceLabels });
}

/** How long a failed regeneration waits before it is tried again. */
const REGENERATE_RETRY_MS = 1000;

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
  /** Labels of this node's Pods ("namespace/name") and of every Namespace, as the watches last gave them. */
  private readonly podLabels = new Map<string, Record<string, string>>();
  private readonly nsLabels = new Map<string, Record<string, string>>();
  private watches: ResourceWatch[] = [];
  /** One chain of work per endpoint (container id): regenerations and DEL never overlap. */
  private readonly chains = new Map<string, Promise<void>>();
  private readonly retries = new Set<NodeJS.Timeout>();
  /** Label sets an endpoint allocated before its regeneration, released once the new identity is in place (or at DEL). */
  private readonly toRelease = new Map<string, LabelSet[]>();
  private stopped = false;

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
    let saved: Endpoint[];
    try {
      saved = JSON.parse(readFileSync(this.stateFile, 'utf8')) as Endpoint[];
    } catch {
      return [];
    }
    for (const ep of saved) {
      delete ep.regeneration;
      this.byContainer.set(ep.containerId, ep);
    }
    return saved;
  }

  /**
   * Re-publishes and re-programs a restored endpoint (after an agent restart) with the labels it
   * was saved with; a label change while the agent was down is found by the watches after.
   */
  async readopt(ep: Endpoint): Promise<void> {
    // Saved by an agent from before namespace labels were kept: what that agent allocated with.
    ep.namespaceLabels ??= await this.namespaceLabels(ep.namespace);
    const alloc = await this.d.allocator.allocate(endpointLabels(this.d.config.cluster, ep));
    ep.identity = alloc.id;
    await this.publish(ep);
    await this.d.onChange(ep, false);
  }

  /**
   * Watches Pods and Namespaces for label changes and regenerates the endpoints they touch;
   * resolves when both initial lists are in (endpoints whose labels changed meanwhile are
   * regenerating by then). An identity moved under a lost lease moves its endpoints too.
   */
  async watchLabels(): Promise<void> {
    let podsSynced!: () => void;
    let nsSynced!: () => void;
    const synced = [new Promise<void>((r) => (podsSynced = r)), new Promise<void>((r) => (nsSynced = r))];
    this.watches.push(
      this.d.resources.watch<PodSpec>('Pod', {
        onChange: (type, _key, res) => {
          if (!res) return;
          const ref = `${res.metadata.namespace ?? 'default'}/${res.metadata.name}`;
          if (type === 'delete' || res.spec?.nodeName !== this.d.config.node) {
            this.podLabels.delete(ref);
            return;
          }
          this.podLabels.set(ref, res.metadata.labels ?? {});
          for (const ep of this.byContainer.values()) if (`${ep.namespace}/${ep.pod}` === ref) this.labelsMayHaveChanged(ep);
        },
        onSynced: () => podsSynced(),
      }, this.d.log),
      this.d.resources.watch('Namespace', {
        onChange: (type, _key, res) => {
          if (!res) return;
          const name = res.metadata.name;
          if (type === 'delete') {
            this.nsLabels.delete(name);
            return;
          }
          this.nsLabels.set(name, res.metadata.labels ?? {});
          for (const ep of this.byContainer.values()) if (ep.namespace === name) this.labelsMayHaveChanged(ep);
        },
        onSynced: () => nsSynced(),
      }, this.d.log),
    );
    this.d.allocator.on('changed', (move: IdentityMove) => this.onIdentityMoved(move));
    await Promise.all(synced);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.retries) clearTimeout(t);
    await Promise.all(this.watches.map((w) => w.stop()));
    await Promise.all([...this.chains.values()]);
  }

  /** Labels as the watches have them now; a pod or namespace not seen (yet) keeps what the endpoint has. */
  private currentLabels(ep: Endpoint): { labels: Record<string, string>; namespaceLabels: Record<string, string> } {
    return { labels: this.podLabels.get(`${ep.namespace}/${ep.pod}`) ?? ep.labels, namespaceLabels: this.nsLabels.get(ep.namespace) ?? ep.namespaceLabels };
  }

  private labelsMayHaveChanged(ep: Endpoint): void {
    const now = this.currentLabels(ep);
    if (sameLabels(now.labels, ep.labels) && sameLabels(now.namespaceLabels, ep.namespaceLabels)) return;
    const reason = sameLabels(now.labels, ep.labels) ? 'namespace labels' : 'pod labels';
    void this.serial(ep.containerId, () => this.regenerate(ep.containerId, reason));
  }

  /** Runs `work` after everything queued for this endpoint. */
  private serial(containerId: string, work: () => Promise<void>): Promise<void> {
    const next = (this.chains.get(containerId) ?? Promise.resolve()).then(work);
    const settled = next.catch(() => undefined);
    this.chains.set(containerId, settled);
    void settled.then(() => {
      if (this.chains.get(containerId) === settled) this.chains.delete(containerId);
    });
    return next;
  }

  /**
   * Puts the endpoint's current labels in force: the new identity is allocated, the endpoint's
   * maps (its identity and its policy) and its record are written with it, and only then is the
   * old identity released. On failure it says why and is tried again: with its old identity if the
   * new one could not be allocated, else with the new one and the writes still to do.
   */
  private async regenerate(containerId: string, reason: string): Promise<void> {
    const ep = this.byContainer.get(containerId);
    if (!ep || this.stopped) return;
    const want = this.currentLabels(ep);
    const changed = !sameLabels(want.labels, ep.labels) || !sameLabels(want.namespaceLabels, ep.namespaceLabels);
    if (!changed && ep.regeneration?.state !== 'failed') return;
    const cluster = this.d.config.cluster;
    const from = ep.identity;
    const count = (ep.regeneration?.count ?? 0) + 1;
    const t0 = performance.now();
    ep.regeneration = { state: 'regenerating', reason, from, at: new Date().toISOString(), count };
    try {
      if (changed) {
        const before = endpointLabels(cluster, ep);
        const after = endpointLabels(cluster, { namespace: ep.namespace, ...want });
        if (after.key !== before.key) {
          const alloc = await this.d.allocator.allocate(after);
          if (this.byContainer.get(containerId) !== ep) return void (await this.d.allocator.release(after));
          ep.identity = alloc.id;
          this.toRelease.set(containerId, [...(this.toRelease.get(containerId) ?? []), before]);
        }
        // (Same key: only labels the identity filter drops changed; the record shows the new ones.)
        Object.assign(ep, want);
      }
      ep.regeneration.to = ep.identity;
      await this.d.onChange(ep, false);
      await this.publish(ep);
      this.save();
      await this.releaseReplaced(containerId);
      ep.regeneration = { ...ep.regeneration, state: 'ready' };
      this.d.log.info({ endpoint: `${ep.namespace}/${ep.pod}`, reason, from, to: ep.identity, ms: Math.round(performance.now() - t0) }, 'endpoint regenerated');
    } catch (err) {
      const message = (err as Error).message;
      ep.regeneration = { ...ep.regeneration, state: 'failed', error: message };
      this.d.log.error({ endpoint: `${ep.namespace}/${ep.pod}`, reason, err: message }, 'endpoint regeneration failed; retrying');
      const t = setTimeout(() => {
        this.retries.delete(t);
        void this.serial(containerId, () => this.regenerate(containerId, reason));
      }, REGENERATE_RETRY_MS);
      t.unref();
      this.retries.add(t);
    }
  }

  /** Releases the identities an endpoint held before its regenerations, once the new one is in place. */
  private async releaseReplaced(containerId: string): Promise<void> {
    const sets = this.toRelease.get(containerId) ?? [];
    this.toRelease.delete(containerId);
    for (const labels of sets) await this.d.allocator.release(labels).catch((err: Error) => this.d.log.warn({ err: err.message, labels: labels.key }, 'identity release failed'));
  }

  /** The identity of a label set this node holds moved (its reference was lost and the id taken): its endpoints move with it. */
  private onIdentityMoved(move: IdentityMove): void {
    for (const ep of this.byContainer.values()) {
      if (ep.identity !== move.oldId || endpointLabels(this.d.config.cluster, ep).key !== move.labels.key) continue;
      void this.serial(ep.containerId, async () => {
        if (this.byContainer.get(ep.containerId) !== ep || ep.identity !== move.oldId) return;
        const count = (ep.regeneration?.count ?? 0) + 1;
        ep.identity = move.newId;
        ep.regeneration = { state: 'regenerating', reason: 'identity moved', from: move.oldId, to: move.newId, at: new Date().toISOString(), count };
        await this.d.onChange(ep, false);
        await this.publish(ep);
        this.save();
        ep.regeneration = { ...ep.regeneration, state: 'ready' };
      }).catch((err: Error) => {
        ep.regeneration = { ...ep.regeneration!, state: 'failed', error: err.message };
        this.d.log.error({ endpoint: `${ep.namespace}/${ep.pod}`, err: err.message }, 'endpoint could not follow its moved identity');
      });
    }
  }

  async add(args: CniArgs): Promise<Endpoint> {
    const existing = this.byContainer.get(args.containerId);
    if (existing) return existing;
    const pod = await this.d.resources.get<PodSpec>('Pod', args.pod, args.namespace);
    if (!pod) throw new CniRequestError(100, `Unknown pod ${args.namespace}/${args.pod}: no Pod resource in cluster ${this.d.config.cluster} (apply it first)`);
    const nsName = netnsName(args.netnsPath);
    const labels = pod.metadata.labels ?? {};
    const namespaceLabels = await this.namespaceLabels(args.namespace);
    const alloc = await this.d.allocator.allocate(endpointLabels(this.d.config.cluster, { namespace: args.namespace, labels, namespaceLabels }));
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
      namespaceLabels,
      namedPorts: namedPortsOf(pod.spec),
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
    // After a regeneration in progress: it either put its identity in place or left the old one.
    return this.serial(containerId, () => this.remove(containerId));
  }

  private async remove(containerId: string): Promise<void> {
    const ep = this.byContainer.get(containerId);
    if (!ep) return;
    await this.d.kv.delete(endpointKey(this.d.config.node, ep.ip)).catch((err: Error) => this.d.log.warn({ err: err.message }, 'could not remove endpoint record; it goes with the lease'));
    this.byContainer.delete(containerId);
    await this.d.onChange(ep, true);
    await this.d.datapath.removeEndpoint(ep.ip, ep.epId);
    await this.ip.deleteLink(ep.hostIf);
    this.d.ipam.release(`${ep.namespace}/${ep.pod}/${ep.containerId}`);
    // What was allocated for it, whatever the namespace holds by now.
    await this.releaseReplaced(containerId);
    await this.d.allocator
      .release(endpointLabels(this.d.config.cluster, ep))
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
    if (ep.namedPorts?.length) record.namedPorts = ep.namedPorts;
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

/** A pod's named container ports, as many as a record carries (MAX_NAMED_PORTS). */
function namedPortsOf(spec: PodSpec | undefined): NamedPort[] {
  const out: NamedPort[] = [];
  for (const c of spec?.containers ?? []) for (const p of c.ports ?? []) if (p.name !== undefined) out.push({ name: p.name, protocol: p.protocol, port: p.containerPort });
  return out.slice(0, MAX_NAMED_PORTS);
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && a[k] === b[k]);
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

