/**
 * Services: which backends each ClusterIP service port gets on this node.
 * Pure functions; the ServiceManager feeds them the cluster's Services, its
 * endpoints and what remote clusters export, and programs the result.
 *
 * Global services (Cilium's model, with Weft's annotation names):
 *   weft.io/global: "true"     the service exists in several clusters under one
 *                              namespace/name; each gets the backends of all
 *   weft.io/shared: "false"    this cluster's backends stay private (it still
 *                              uses the others')
 *   weft.io/affinity: local    own cluster's backends while it has any, else the others
 *                     remote   other clusters' backends while there are any, else own
 *                     none     all of them (the default)
 * A remote cluster exports each global, shared service as a ServiceRecord;
 * its backends are its endpoints in that namespace matching the record's
 * selector, on the record's target ports.
 */
import type { Resource, ServicePort, ServiceSpec } from '@weft/resources';
import type { EndpointRecord } from './state.js';

export const GLOBAL_ANNOTATION = 'weft.io/global';
export const SHARED_ANNOTATION = 'weft.io/shared';
export const AFFINITY_ANNOTATION = 'weft.io/affinity';

export type Affinity = 'local' | 'remote' | 'none';

/** A Service as this module uses it. */
export interface ServiceView {
  namespace: string;
  name: string;
  clusterIP: string;
  selector: Record<string, string>;
  ports: ServicePort[];
  global: boolean;
  shared: boolean;
  affinity: Affinity;
}

/** What a cluster exports of a global, shared service (mesh kind "services", key `<namespace>.<name>`). */
export interface ServiceRecord {
  namespace: string;
  name: string;
  selector: Record<string, string>;
  ports: ServicePort[];
}

export interface Backend {
  ip: string;
  port: number;
  cluster: string;
  pod: string;
}

/** One service port, ready for the datapath. */
export interface ServiceFrontend {
  vip: string;
  port: number;
  protocol: 'TCP' | 'UDP';
  backends: Backend[];
}

/** The result for one service: its frontends and every backend it could use, per cluster. */
export interface ServiceState {
  namespace: string;
  name: string;
  clusterIP: string;
  global: boolean;
  shared: boolean;
  affinity: Affinity;
  frontends: ServiceFrontend[];
  /** cluster -> backend pod addresses available before affinity narrowed them. */
  available: Record<string, string[]>;
}

export function serviceRecordKey(namespace: string, name: string): string {
  return `${namespace}.${name}`;
}

/** Reads the annotations; returns a reason string for a service that cannot be used. */
export function serviceView(r: Resource<ServiceSpec>): ServiceView | string {
  const a = r.metadata.annotations ?? {};
  const global = a[GLOBAL_ANNOTATION];
  const shared = a[SHARED_ANNOTATION];
  const affinity = a[AFFINITY_ANNOTATION] ?? 'none';
  if (global !== undefined && global !== 'true' && global !== 'false') return `${GLOBAL_ANNOTATION}: ${JSON.stringify(global)} is not "true" or "false"`;
  if (shared !== undefined && shared !== 'true' && shared !== 'false') return `${SHARED_ANNOTATION}: ${JSON.stringify(shared)} is not "true" or "false"`;
  if (affinity !== 'local' && affinity !== 'remote' && affinity !== 'none') return `${AFFINITY_ANNOTATION}: ${JSON.stringify(affinity)} is not local, remote or none`;
  if (!r.spec.clusterIP) return 'no clusterIP allocated';
  return {
    namespace: r.metadata.namespace ?? 'default',
    name: r.metadata.name,
    clusterIP: r.spec.clusterIP,
    selector: r.spec.selector ?? {},
    ports: r.spec.ports,
    global: global === 'true',
    shared: shared !== 'false',
    affinity,
  };
}

/** The record a cluster exports for a service, or undefined when it exports none. */
export function exportRecord(v: ServiceView): ServiceRecord | undefined {
  if (!v.global || !v.shared) return undefined;
  return { namespace: v.namespace, name: v.name, selector: v.selector, ports: v.ports };
}

/** Checks a record a remote exported (it is data, never trusted). */
export function parseServiceRecord(key: string, value: string): ServiceRecord | string {
  let r: Partial<ServiceRecord>;
  try {
    r = JSON.parse(value) as Partial<ServiceRecord>;
  } catch {
    return 'not JSON';
  }
  const dns = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
  if (typeof r.namespace !== 'string' || !dns.test(r.namespace)) return `namespace ${JSON.stringify(r.namespace)} is not a DNS label`;
  if (typeof r.name !== 'string' || !dns.test(r.name)) return `name ${JSON.stringify(r.name)} is not a DNS label`;
  if (key !== serviceRecordKey(r.namespace, r.name)) return `service ${r.namespace}/${r.name} stored under ${key}`;
  if (typeof r.selector !== 'object' || r.selector === null || Array.isArray(r.selector) || Object.values(r.selector).some((x) => typeof x !== 'string')) return 'selector must map strings to strings';
  if (!Array.isArray(r.ports) || r.ports.length === 0 || r.ports.length > 64) return 'ports must list 1-64 ports';
  for (const [i, p] of r.ports.entries()) {
    const ok = typeof p === 'object' && p !== null && (p.protocol === 'TCP' || p.protocol === 'UDP') && isPort(p.port) && isPort(p.targetPort) && (p.name === undefined || typeof p.name === 'string');
    if (!ok) return `ports[${i}] is not {protocol: TCP|UDP, port, targetPort 1-65535}`;
  }
  return r as ServiceRecord;
}

function isPort(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;
}

/**
 * Endpoints indexed by namespace and label (key=value), so a selector costs
 * its smallest posting list instead of a scan of every endpoint: 1,000
 * services over 100k endpoints resolve in milliseconds, not seconds.
 */
export class EndpointIndex {
  private readonly byLabel = new Map<string, EndpointRecord[]>();

  constructor(endpoints: Iterable<EndpointRecord>) {
    for (const e of endpoints) {
      for (const [k, v] of Object.entries(e.labels)) {
        const key = `${e.namespace}\0${k}=${v}`;
        const list = this.byLabel.get(key);
        if (list) list.push(e);
        else this.byLabel.set(key, [e]);
      }
    }
  }

  /** Endpoints of `namespace` whose labels include every pair of `selector` (none for an empty selector). */
  select(namespace: string, selector: Record<string, string>): EndpointRecord[] {
    let best: EndpointRecord[] | undefined;
    for (const [k, v] of Object.entries(selector)) {
      const list = this.byLabel.get(`${namespace}\0${k}=${v}`);
      if (!list) return [];
      if (!best || list.length < best.length) best = list;
    }
    return best ? best.filter((e) => selects(selector, namespace, e)) : [];
  }
}

function selects(selector: Record<string, string>, namespace: string, ep: EndpointRecord): boolean {
  const keys = Object.keys(selector);
  if (keys.length === 0 || ep.namespace !== namespace) return false;
  return keys.every((k) => ep.labels[k] === selector[k]);
}

/** The target port of `port` in a cluster's definition of the service (by name, else by port number). */
function targetPort(defs: readonly ServicePort[], port: ServicePort): number | undefined {
  const match = defs.find((d) => d.protocol === port.protocol && (port.name !== undefined && d.name !== undefined ? d.name === port.name : d.port === port.port));
  return match?.targetPort;
}

export interface RemoteServiceInput {
  cluster: string;
  record: ServiceRecord;
  endpoints: Iterable<EndpointRecord>;
}

/**
 * Backends of one local service: its own cluster's matching endpoints, plus,
 * for a global service, those of every remote exporting the same
 * namespace/name; then narrowed by affinity.
 */
export function resolveService(v: ServiceView, cluster: string, localEndpoints: Iterable<EndpointRecord>, remotes: readonly RemoteServiceInput[]): ServiceState {
  const own = [...localEndpoints].filter((e) => selects(v.selector, v.namespace, e));
  const remote = v.global ? remotes.filter((r) => r.record.namespace === v.namespace && r.record.name === v.name).map((r) => ({ r, eps: [...r.endpoints].filter((e) => selects(r.record.selector, v.namespace, e)) })) : [];
  const available: Record<string, string[]> = {};
  const frontends = v.ports.map((port): ServiceFrontend => {
    const local: Backend[] = own.map((e) => ({ ip: e.ip, port: port.targetPort, cluster, pod: `${e.namespace}/${e.pod}` }));
    const others: Backend[] = [];
    for (const { r, eps } of remote) {
      const tp = targetPort(r.record.ports, port);
      if (tp === undefined) continue;
      for (const e of eps) others.push({ ip: e.ip, port: tp, cluster: r.cluster, pod: `${e.namespace}/${e.pod}` });
    }
    for (const b of [...local, ...others]) (available[b.cluster] ??= []).push(b.ip);
    let backends: Backend[];
    if (v.affinity === 'local') backends = local.length > 0 ? local : others;
    else if (v.affinity === 'remote') backends = others.length > 0 ? others : local;
    else backends = [...local, ...others];
    backends.sort((a, b) => (a.ip === b.ip ? a.port - b.port : a.ip < b.ip ? -1 : 1));
    return { vip: v.clusterIP, port: port.port, protocol: port.protocol, backends };
  });
  for (const k of Object.keys(available)) available[k] = [...new Set(available[k])].sort();
  return { namespace: v.namespace, name: v.name, clusterIP: v.clusterIP, global: v.global, shared: v.shared, affinity: v.affinity, frontends, available };
}

/**
 * New slot order for a frontend: backends that stay keep their slot; a slot
 * freed by a leaving backend goes to a newcomer, or else to the last backend,
 * so the list stays dense (slots 1..count) with the fewest moves.
 */
export function stableSlots(previous: readonly string[], wanted: readonly string[]): string[] {
  const want = new Set(wanted);
  const out: Array<string | undefined> = previous.map((b) => (want.has(b) ? b : undefined));
  const present = new Set(out.filter((b): b is string => b !== undefined));
  const newcomers = wanted.filter((b) => !present.has(b));
  let next = 0;
  for (let i = 0; i < out.length && next < newcomers.length; i++) if (out[i] === undefined) out[i] = newcomers[next++];
  out.push(...newcomers.slice(next));
  // Remaining holes, lowest first, take the last backends (one pass from each end).
  let end = out.length - 1;
  for (let hole = 0; hole < end; hole++) {
    if (out[hole] !== undefined) continue;
    while (end > hole && out[end] === undefined) end--;
    if (end > hole) {
      out[hole] = out[end];
      out[end--] = undefined;
    }
  }
  return out.filter((b): b is string => b !== undefined);
}
