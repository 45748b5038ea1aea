/**
 * Service records: what a cluster exports of a global Service to the others
 * (mesh kind "services", key `<namespace>.<name>`), and how a Service's
 * annotations make it global, shared and with which affinity. The agent and
 * the clustermesh-apiserver read and write them the same way.
 *
 * Global services (Cilium's model, with Weft's annotation names):
 *   weft.io/global: "true"     the service exists in several clusters under one
 *                              namespace/name; each gets the backends of all
 *   weft.io/shared: "false"    this cluster's backends stay private (it still
 *                              uses the others')
 *   weft.io/affinity: local    own cluster's backends while it has any, else the others
 *                     remote   other clusters' backends while there are any, else own
 *                     none     all of them (the default)
 */
import type { Resource, ServicePort, ServiceSpec } from '@weft/resources';

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
