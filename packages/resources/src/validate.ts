/**
 * Validation and normalization of standalone resources. Each document either
 * validates completely or is rejected with the field that is wrong; the store
 * writes nothing unless every document of a request is valid.
 */
import { PORT_NAME_RE, parsePolicy, InvalidPolicyError } from '@weft/policy';
import { parseIPv4 } from './cluster-ip.js';
import { InvalidResourceError } from './errors.js';
import { API_VERSION, NAMESPACED, type ContainerPort, type ContainerSpec, type Metadata, type PodSpec, type Resource, type ResourceKind, type ServicePort, type ServiceSpec } from './types.js';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const LABEL_KEY = /^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;
const KINDS = Object.keys(NAMESPACED) as ResourceKind[];

type Obj = Record<string, unknown>;

class V {
  constructor(readonly where: string) {}
  fail(path: string, problem: string): never {
    throw new InvalidResourceError(this.where, `${path}: ${problem}`);
  }
  obj(v: unknown, path: string, optional = false): Obj {
    if ((v === undefined || v === null) && optional) return {};
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(path, `must be an object`);
    return v as Obj;
  }
  str(v: unknown, path: string): string {
    if (typeof v !== 'string' || v === '') this.fail(path, `must be a non-empty string`);
    return v;
  }
  map(v: unknown, path: string, keyRe: RegExp, valueRe: RegExp | undefined): Record<string, string> {
    const o = this.obj(v, path, true);
    const out: Record<string, string> = {};
    for (const [k, val] of Object.entries(o)) {
      if (!keyRe.test(k)) this.fail(`${path}.${k}`, `${JSON.stringify(k)} is not a valid key`);
      if (typeof val !== 'string') this.fail(`${path}.${k}`, `value must be a string (quote numbers and booleans)`);
      if (valueRe && !valueRe.test(val)) this.fail(`${path}.${k}`, `${JSON.stringify(val)} is not a valid label value`);
      out[k] = val;
    }
    return out;
  }
  port(v: unknown, path: string): number {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) this.fail(path, `must be a port number 1-65535`);
    return v;
  }
}

export interface ValidateOptions {
  /**
   * The object comes from a Kubernetes API server (the Kubernetes source): kubelet runs its pods, so
   * containers need no command (the image's entrypoint runs), and NodePort and LoadBalancer Services
   * are taken for their cluster IP (Weft load-balances cluster IPs only). Everything else is checked
   * exactly as for `weft apply`.
   */
  kubernetes?: boolean;
}

/** Validates one decoded document (`where` names it in errors, e.g. "#2 (Pod shop/web) in pods.yaml"). */
export function validateResource(doc: unknown, where: string, cluster: string, options: ValidateOptions = {}): Resource {
  const v = new V(where);
  const d = v.obj(doc, '(document)');
  const kind = d.kind as ResourceKind;
  if (typeof kind !== 'string' || !KINDS.includes(kind)) v.fail('kind', `${JSON.stringify(d.kind)} is not one of ${KINDS.join(', ')}`);
  if (d.apiVersion !== API_VERSION[kind]) v.fail('apiVersion', `${JSON.stringify(d.apiVersion)} is not ${API_VERSION[kind]} for ${kind}`);
  const m = v.obj(d.metadata, 'metadata');
  const name = v.str(m.name, 'metadata.name');
  if (!(kind === 'Namespace' || kind === 'Service' ? DNS_LABEL : DNS_SUBDOMAIN).test(name)) v.fail('metadata.name', `${JSON.stringify(name)} is not a valid ${kind} name`);
  const metadata: Metadata = {
    name,
    labels: v.map(m.labels, 'metadata.labels', LABEL_KEY, LABEL_VALUE),
    annotations: v.map(m.annotations, 'metadata.annotations', LABEL_KEY, undefined),
  };
  if (NAMESPACED[kind]) {
    const ns = m.namespace === undefined ? 'default' : v.str(m.namespace, 'metadata.namespace');
    if (!DNS_LABEL.test(ns)) v.fail('metadata.namespace', `${JSON.stringify(ns)} is not a valid namespace name`);
    metadata.namespace = ns;
  } else if (m.namespace !== undefined) {
    v.fail('metadata.namespace', `${kind} is cluster-scoped and takes no namespace`);
  }
  const base = { apiVersion: API_VERSION[kind], kind, metadata };
  switch (kind) {
    case 'Namespace':
      return { ...base, spec: {} };
    case 'Pod':
      return { ...base, spec: validatePodSpec(v, d.spec, options.kubernetes === true) };
    case 'Service':
      validateServiceAnnotations(v, metadata.annotations);
      return { ...base, spec: validateServiceSpec(v, d.spec, options.kubernetes === true) };
    default:
      try {
        parsePolicy({ ...d, metadata: { ...m, ...(metadata.namespace ? { namespace: metadata.namespace } : {}) } }, cluster);
      } catch (err) {
        if (err instanceof InvalidPolicyError) throw new InvalidResourceError(where, err.message.replace(/^Invalid policy [^:]+: /, ''), { cause: err });
        throw err;
      }
      return { ...base, spec: d.spec };
  }
}

function validatePodSpec(v: V, s: unknown, kubelet: boolean): PodSpec {
  const spec = v.obj(s, 'spec');
  const out: PodSpec = { containers: [] };
  if (spec.nodeName !== undefined) {
    out.nodeName = v.str(spec.nodeName, 'spec.nodeName');
    if (!DNS_SUBDOMAIN.test(out.nodeName)) v.fail('spec.nodeName', `${JSON.stringify(out.nodeName)} is not a valid node name`);
  }
  if (!Array.isArray(spec.containers) || spec.containers.length === 0) v.fail('spec.containers', 'must list at least one container');
  const names = new Set<string>();
  const portNames = new Set<string>();
  spec.containers.forEach((c: unknown, i: number) => {
    const co = v.obj(c, `spec.containers[${i}]`);
    const name = v.str(co.name, `spec.containers[${i}].name`);
    // Kubernetes' rule; standalone pods also name their log file after it.
    if (!DNS_LABEL.test(name)) v.fail(`spec.containers[${i}].name`, `${JSON.stringify(name)} is not a valid container name (a DNS-1123 label: 1-63 characters of a-z, 0-9 and -, starting and ending with a letter or digit)`);
    if (names.has(name)) v.fail(`spec.containers[${i}].name`, `${JSON.stringify(name)} is used twice`);
    names.add(name);
    const argv = [...(Array.isArray(co.command) ? co.command : []), ...(Array.isArray(co.args) ? co.args : [])];
    if (co.command !== undefined && !Array.isArray(co.command)) v.fail(`spec.containers[${i}].command`, 'must be a list of strings');
    if (argv.length === 0 && !kubelet) v.fail(`spec.containers[${i}].command`, 'is required: standalone pods run their command as a host process (e.g. ["weft", "echo-server", "--tcp", "8080"])');
    argv.forEach((a, j) => {
      if (typeof a !== 'string') v.fail(`spec.containers[${i}].command[${j}]`, 'must be a string');
    });
    const container: ContainerSpec = { name, command: argv as string[] };
    if (co.ports !== undefined) container.ports = validateContainerPorts(v, co.ports, `spec.containers[${i}].ports`, portNames);
    out.containers.push(container);
  });
  return out;
}

function validateContainerPorts(v: V, value: unknown, path: string, names: Set<string>): ContainerPort[] {
  if (!Array.isArray(value)) v.fail(path, 'must be a list of ports');
  return (value as unknown[]).map((x, j) => {
    const p = `${path}[${j}]`;
    const po = v.obj(x, p);
    const port = po.containerPort;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) v.fail(`${p}.containerPort`, `must be a port number 1-65535, got ${JSON.stringify(port)}`);
    const protocol = po.protocol === undefined ? 'TCP' : po.protocol;
    if (protocol !== 'TCP' && protocol !== 'UDP' && protocol !== 'SCTP') v.fail(`${p}.protocol`, `${JSON.stringify(protocol)} is not TCP, UDP or SCTP`);
    const out: ContainerPort = { containerPort: port as number, protocol: protocol as ContainerPort['protocol'] };
    if (po.name !== undefined) {
      const name = v.str(po.name, `${p}.name`);
      if (!PORT_NAME_RE.test(name)) v.fail(`${p}.name`, `${JSON.stringify(name)} is not a valid port name (1-15 of a-z, 0-9 and -, at least one letter, no leading, trailing or double -)`);
      if (names.has(name)) v.fail(`${p}.name`, `${JSON.stringify(name)} is used twice in the pod`);
      names.add(name);
      out.name = name;
    }
    return out;
  });
}

/** Global-service annotations (meaning in @weft/agent services.ts). */
const SERVICE_ANNOTATIONS: Record<string, readonly string[]> = {
  'weft.io/global': ['true', 'false'],
  'weft.io/shared': ['true', 'false'],
  'weft.io/affinity': ['local', 'remote', 'none'],
};

function validateServiceAnnotations(v: V, annotations: Record<string, string>): void {
  for (const [key, allowed] of Object.entries(SERVICE_ANNOTATIONS)) {
    const value = annotations[key];
    if (value !== undefined && !allowed.includes(value)) v.fail(`metadata.annotations["${key}"]`, `${JSON.stringify(value)} is not one of ${allowed.join(', ')}`);
  }
}

function validateServiceSpec(v: V, s: unknown, kubernetes: boolean): ServiceSpec {
  const spec = v.obj(s, 'spec');
  const types = kubernetes ? ['ClusterIP', 'NodePort', 'LoadBalancer'] : ['ClusterIP'];
  if (spec.type !== undefined && !types.includes(spec.type as string)) v.fail('spec.type', `${JSON.stringify(spec.type)} is not supported (${types.join(', ')})`);
  const out: ServiceSpec = { type: 'ClusterIP', selector: v.map(spec.selector, 'spec.selector', LABEL_KEY, LABEL_VALUE), ports: [] };
  if (spec.clusterIP !== undefined) {
    const ip = v.str(spec.clusterIP, 'spec.clusterIP');
    // One spelling per address (no leading zeros): the store indexes addresses by their text.
    if (parseIPv4(ip) === undefined) v.fail('spec.clusterIP', `${JSON.stringify(ip)} is not an IPv4 address (dotted decimal, no leading zeros)`);
    out.clusterIP = ip;
  }
  if (!Array.isArray(spec.ports) || spec.ports.length === 0) v.fail('spec.ports', 'must list at least one port');
  spec.ports.forEach((p: unknown, i: number) => {
    const po = v.obj(p, `spec.ports[${i}]`);
    const protocol = po.protocol === undefined ? 'TCP' : po.protocol;
    if (protocol !== 'TCP' && protocol !== 'UDP') v.fail(`spec.ports[${i}].protocol`, `${JSON.stringify(protocol)} is not TCP or UDP`);
    const port = v.port(po.port, `spec.ports[${i}].port`);
    const targetPort = po.targetPort === undefined ? port : v.port(po.targetPort, `spec.ports[${i}].targetPort`);
    const sp: ServicePort = { protocol, port, targetPort };
    if (po.name !== undefined) sp.name = v.str(po.name, `spec.ports[${i}].name`);
    out.ports.push(sp);
  });
  return out;
}
