/**
 * Agent configuration: what one node's agent needs to know, with defaults and
 * validation. Loaded from a JSON file (the lab writes one per node; the Helm
 * chart renders one for the whole DaemonSet). With `source: kubernetes` the
 * node's own facts come from its pod and its Node: `node` and `nodeIp` from
 * the environment (WEFT_NODE_NAME, WEFT_NODE_IP, set by the chart from the
 * downward API), the pod CIDR from Node.spec.podCIDRs when the agent starts.
 */
import { readFileSync } from 'node:fs';
import { validateClusterId } from '@weft/identity';
import { readEtcdTlsFiles, type EtcdTlsFiles } from '@weft/kvstore';
import type { WireGuardImplementationChoice } from '@weft/net';
import { formatIpv4, parseCidr, parseIpv4 } from '@weft/common';
import { SIZED_MAPS, type SizedMap } from '@weft/datapath';
import { compileFieldMask, compileFlowFilters, FlowFieldMaskError, FlowFilterError, type FlowFilterInput } from '@weft/observer';
// The subpath: parsing a configuration need not load prom-client (the CLI's probes read it too).
import { parseListen } from '@weft/metrics/listen';
import { SERVICE_CIDR } from '@weft/resources';
import { AgentConfigError } from './errors.js';
import { DEFAULT_MIN_POD_CIDR_BITS } from '@weft/schema';

export type RoutingMode = 'vxlan' | 'geneve' | 'direct';

/** Where the cluster's objects come from: the cluster's etcd (`weft apply`), or the Kubernetes API server. */
export type SourceMode = 'standalone' | 'kubernetes';

/** Environment variables the agent reads in kubernetes mode. */
export const NODE_NAME_ENV = 'WEFT_NODE_NAME';
export const NODE_IP_ENV = 'WEFT_NODE_IP';

export interface AgentConfig {
  cluster: string;
  clusterId: number;
  node: string;
  /** etcd endpoints (host:port, https://host:port or unix:///path). */
  etcd: string[];
  /**
   * Mutual TLS to etcd: PEM files of the CA that issued etcd's server certificate, and of this
   * agent's client certificate and key. Read when the agent starts (readEtcdTls). Absent: plain
   * connections, as the lab runs etcd.
   */
  etcdTls?: EtcdTlsFiles;
  /**
   * Kubernetes mode: where this node gets its own etcd certificate (CN = the node) before it opens
   * etcd (etcd-credential.ts): the issuer's URL and the projected ServiceAccount token (audience
   * weft-etcd-issuer) to prove the node with. The certificate and key are written to etcdTls.cert
   * and etcdTls.key (writable then); etcdTls.ca is the CA of both the issuer and etcd.
   */
  etcdIssuer?: { url: string; tokenFile: string };
  /** This node's underlay address (IPv4). */
  nodeIp: string;
  /** The node's pod CIDR (IPv4), e.g. 10.101.1.0/24. In kubernetes mode '' until start() reads it from the Node. */
  podCidr: string;
  /** Where Pods, Services, policies and Namespaces come from; undefined means standalone. */
  source?: SourceMode;
  /** kubernetes mode: a kubeconfig file (development); default the pod's service account. */
  kubeconfig?: string;
  routing: RoutingMode;
  /** Directory holding the compiled bpf_lxc.o, bpf_overlay.o and bpf_host.o. */
  bpfDir: string;
  /** bpffs directory where this node's maps are pinned. */
  pinRoot: string;
  /** Agent state (IPAM, socket, pod logs). */
  stateDir: string;
  /** The collect-metadata tunnel device. */
  tunnelDevice: string;
  /** UDP port of the VXLAN overlay (Geneve uses its standard 6081). */
  vxlanPort: number;
  /** MTU of the underlay device; pod MTU is derived from it. */
  underlayMtu: number;
  /**
   * The device holding nodeIp, where node-to-node traffic arrives. The agent attaches from_underlay
   * (bpf/bpf_host.c) to its tc ingress in every encryption mode, to judge tunnel packets and pod or
   * node addresses arriving there (docs/security.md). Default: the device that holds nodeIp when
   * the agent starts; the agent does not start without one.
   */
  underlayDevice?: string;
  /** Global audit mode. */
  audit: boolean;
  /** Run pods' commands as host processes (the lab's stand-in for kubelet). */
  podRuntime: boolean;
  /** Path of the CNI plugin executable the pod runtime calls. */
  cniPlugin?: string;
  /**
   * Where the network sysctls of the agent's namespace are written (default /proc/sys/net). A
   * container's /proc/sys is read-only, so the chart mounts the host's /proc/sys/net at
   * /host/proc/sys/net, as Cilium does; a sysctl file answers for the namespace of who opens it.
   */
  procSysNet?: string;
  /** Pod traffic between nodes: through WireGuard (the default) or in the clear. */
  encryption: EncryptionMode;
  /** With encryption: a pod on a node whose key is unknown is not sent to (dropped, reported). */
  encryptionStrict: boolean;
  /** The WireGuard device; unique on the machine (wireguard-go's sockets are machine-wide). */
  wireguardDevice: string;
  /** Lane 0's UDP port; lane 1 listens on the next one. */
  wireguardPort: number;
  /**
   * Which WireGuard runs both lanes' devices: 'auto' (the default) the kernel's where it has the
   * module, else wireguard-go (a device already running under the name is kept either way);
   * 'kernel' only the kernel's (the agent fails at start with WEFT_ERR_KERNEL_WIREGUARD_UNAVAILABLE
   * where there is none); 'userspace' always wireguard-go. An insisted-on implementation replaces a
   * device of the other one.
   */
  wireguardImplementation: WireGuardImplementationChoice;
  /**
   * IPsec: the mesh key, JSON {"keyId": 1-15, "key": "<64 hex>"} (0600), the same on every node of
   * every connected cluster. Watched: writing a new key id there rotates IPsec keys.
   */
  ipsecKeyFile: string;
  /** Rotate a WireGuard key when the older one is this old (0: only on demand). */
  keyRotationIntervalSec: number;
  /** A rotation whose peers have not all moved off the lane within this time is given up (before any key changed). */
  keyRotationTimeoutSec: number;
  /**
   * max_entries of the node's sized maps; a map not named keeps the size bpf/lib/maps.h declares
   * (SIZED_MAPS). A pinned map of another size is replaced at start and its entries copied.
   */
  mapSizes?: Partial<MapSizes>;
  /**
   * The observer API (@weft/observer): always on the unix socket `<stateDir>/observer.sock`; with
   * `listen` (host:port, e.g. the node IP and 4244) also over TCP with mutual TLS, for the relay:
   * `tls` names PEM files of the CA whose certificates may connect (the relay's) and of this
   * server's certificate and key. `bufferSize`: flows kept for history (default 10,000). `export`:
   * the node's flows to a JSON-lines file for a SIEM (FlowExportConfig).
   */
  observer?: ObserverConfig;
  /**
   * The cluster's Service ranges (default 10.96.0.0/16, standalone's): a remote cluster's pods and
   * nodes may not claim them (mesh-admission.ts).
   */
  serviceCidrs?: string[];
  /**
   * The networks of the nodes' underlay: a remote cluster's pod CIDRs may not overlap them (nor may
   * a route to a pod CIDR replace the underlay's). Default: the network of the address holding
   * nodeIp, read when the agent starts.
   */
  underlayCidrs?: string[];
  /** The shortest pod CIDR a remote cluster's node may claim (default 16). */
  remotePodCidrMinBits?: number;
  /** Conntrack quota, timeouts and garbage collection; absent = CONNTRACK_DEFAULTS. */
  conntrack?: ConntrackConfig;
  /**
   * Prometheus metrics (agent-metrics.ts, docs/metrics.md): served over plain HTTP at GET /metrics
   * on `listen` (IPv4:port; the chart's 0.0.0.0:9962 on the host network, as Cilium's agent).
   * Absent: no metrics endpoint.
   */
  metrics?: MetricsConfig;
}

export interface MetricsConfig {
  listen: string;
}

/**
 * Conntrack (bpf/lib/ct.h): how many entries one endpoint may hold, how long an entry lives after
 * its last packet (seconds), and how often the agent's garbage collector walks the table (it
 * adapts between the two bounds: more often under pressure).
 */
export interface ConntrackConfig {
  maxEntriesPerEndpoint: number;
  tcpSynTimeoutSec: number;
  tcpEstablishedTimeoutSec: number;
  tcpCloseTimeoutSec: number;
  udpTimeoutSec: number;
  icmpTimeoutSec: number;
  gcMinIntervalSec: number;
  gcMaxIntervalSec: number;
}

/** Cilium's timeouts; a quota of a quarter of the default table (256k), so no four pods can fill it. */
export const CONNTRACK_DEFAULTS: Readonly<ConntrackConfig> = {
  maxEntriesPerEndpoint: 65_536,
  tcpSynTimeoutSec: 60,
  tcpEstablishedTimeoutSec: 21_600,
  tcpCloseTimeoutSec: 10,
  udpTimeoutSec: 60,
  icmpTimeoutSec: 60,
  gcMinIntervalSec: 5,
  gcMaxIntervalSec: 300,
};

/** The conntrack settings of `config`, defaults filled in. */
export function conntrackConfig(config: Pick<AgentConfig, 'conntrack'>): ConntrackConfig {
  return { ...CONNTRACK_DEFAULTS, ...config.conntrack };
}

/** Entries of each map the agent sizes: ipcache, endpoints, policy, ct (conntrack), lbServices, lbBackends. */
export type MapSizes = Record<SizedMap, number>;

/** Largest accepted size: 16M entries (a preallocated map of that size is already gigabytes). */
export const MAX_MAP_ENTRIES = 1 << 24;

/** The node's two WireGuard devices (see encryption.ts): lane 1's name and port follow lane 0's. */
export function wireguardLanes(c: Pick<AgentConfig, 'wireguardDevice' | 'wireguardPort'>): Array<{ device: string; port: number }> {
  return [
    { device: c.wireguardDevice, port: c.wireguardPort },
    { device: `${c.wireguardDevice}b`, port: c.wireguardPort + 1 },
  ];
}

export type EncryptionMode = 'wireguard' | 'ipsec' | 'off';

/** The etcd TLS files of `config`, read for KvClient; undefined without etcdTls. */
export function readEtcdTls(config: Pick<AgentConfig, 'etcdTls'>, source = 'agent config'): { ca: Buffer; cert: Buffer; key: Buffer } | undefined {
  return config.etcdTls && readEtcdTlsFiles(config.etcdTls, (field, reason) => new AgentConfigError(source, `etcdTls.${field}: ${reason}`));
}

/** Outer Ethernet + IPv4 + UDP + VXLAN (or Geneve without options) headers. */
export const VXLAN_OVERHEAD = 50;
/** IPv4 + UDP + WireGuard header and tag. */
export const WIREGUARD_OVERHEAD = 60;
/** ESP tunnel mode with rfc4106(gcm(aes)): outer IPv4 20, ESP header 8, IV 8, padding 0-3, trailer 2, ICV 16 (57), kept 4-aligned. */
export const IPSEC_OVERHEAD = 60;

export function loadAgentConfig(path: string): AgentConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new AgentConfigError(path, `cannot read it as JSON: ${(err as Error).message}`);
  }
  return validateAgentConfig(raw, path);
}

export interface ObserverConfig {
  bufferSize: number;
  listen?: string;
  tls?: EtcdTlsFiles;
  export?: FlowExportConfig;
}

/**
 * Flow export (@weft/observer's FlowExporter), named as Hubble's exporter options: every flow that
 * passes `allowList` and `denyList` (FlowFilters, as GetFlows takes them), with the fields of
 * `fieldMask` (empty: all), one JSON object per line to `filePath`, rotated at `fileMaxSizeMb` MiB
 * (default 10), keeping `fileMaxBackups` rotated files (default 5), gzipped with `fileCompress`
 * (default false). Filters and mask are compiled
 * when the configuration is read: a bad one is an error naming its entry.
 */
export interface FlowExportConfig {
  filePath: string;
  fieldMask: string[];
  allowList: FlowFilterInput[];
  denyList: FlowFilterInput[];
  fileMaxSizeMb: number;
  fileMaxBackups: number;
  fileCompress: boolean;
}

const EXPORT_KEYS = ['filePath', 'fieldMask', 'allowList', 'denyList', 'fileMaxSizeMb', 'fileMaxBackups', 'fileCompress'];

export function validateAgentConfig(raw: unknown, source = 'agent config', env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const fail = (field: string, problem: string): never => {
    throw new AgentConfigError(source, `${field}: ${problem}`);
  };
  if (typeof raw !== 'object' || raw === null) fail('(document)', 'must be an object');
  const c = raw as Record<string, unknown>;
  const str = (k: string): string => (typeof c[k] === 'string' && c[k] !== '' ? (c[k] as string) : fail(k, 'must be a non-empty string'));
  const mode = (c.source ?? 'standalone') as SourceMode;
  if (mode !== 'standalone' && mode !== 'kubernetes') fail('source', `${JSON.stringify(mode)} is not standalone or kubernetes`);
  const kube = mode === 'kubernetes';
  // In kubernetes mode the pod's environment names the node (one config serves every node).
  const fromEnv = (k: string, name: string): string => {
    const v = env[name];
    if (v !== undefined && v !== '') return v;
    return typeof c[k] === 'string' && c[k] !== '' ? (c[k] as string) : fail(k, `must be set: ${name} in the environment (the chart sets it) or ${k} in the file`);
  };
  const cluster = str('cluster');
  if (!/^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$/.test(cluster)) fail('cluster', `${JSON.stringify(cluster)} must be 1-32 lowercase letters, digits or '-'`);
  const node = kube ? fromEnv('node', NODE_NAME_ENV) : str('node');
  if (!/^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/.test(node)) fail('node', `${JSON.stringify(node)} is not a valid node name`);
  try {
    validateClusterId(c.clusterId, 'configure agent');
  } catch (err) {
    fail('clusterId', (err as Error).message);
  }
  if (!Array.isArray(c.etcd) || c.etcd.length === 0 || !c.etcd.every((e) => typeof e === 'string')) fail('etcd', 'must be a non-empty list of endpoints');
  if (c.etcdTls !== undefined) {
    const t = c.etcdTls as Record<string, unknown>;
    if (typeof t !== 'object' || t === null || Array.isArray(t)) fail('etcdTls', 'must be an object {ca, cert, key} of file paths');
    for (const k of ['ca', 'cert', 'key']) if (typeof t[k] !== 'string' || t[k] === '') fail(`etcdTls.${k}`, 'must be a non-empty file path (PEM)');
    const extra = Object.keys(t).find((k) => k !== 'ca' && k !== 'cert' && k !== 'key');
    if (extra !== undefined) fail(`etcdTls.${extra}`, 'is not a key of etcdTls (ca, cert, key)');
  }
  if (c.etcdIssuer !== undefined) {
    const i = c.etcdIssuer as Record<string, unknown>;
    if (typeof i !== 'object' || i === null || Array.isArray(i)) fail('etcdIssuer', 'must be an object {url, tokenFile}');
    if (typeof i.url !== 'string' || !/^https:\/\/[^\s/]+\/\S*$/.test(i.url)) fail('etcdIssuer.url', `${JSON.stringify(i.url)} must be an https:// URL`);
    if (typeof i.tokenFile !== 'string' || i.tokenFile === '') fail('etcdIssuer.tokenFile', 'must be a non-empty file path');
    const extra = Object.keys(i).find((k) => k !== 'url' && k !== 'tokenFile');
    if (extra !== undefined) fail(`etcdIssuer.${extra}`, 'is not a key of etcdIssuer (url, tokenFile)');
    if (c.etcdTls === undefined) fail('etcdIssuer', 'needs etcdTls: its ca verifies the issuer, its cert and key are where the credential is written');
  }
  const nodeIp = kube ? fromEnv('nodeIp', NODE_IP_ENV) : str('nodeIp');
  if (parseIpv4(nodeIp) === undefined) fail('nodeIp', `${JSON.stringify(nodeIp)} is not an IPv4 address`);
  if (kube && c.podCidr !== undefined) fail('podCidr', 'comes from the Node (spec.podCIDRs) in kubernetes mode; remove it');
  if (kube && c.podRuntime === true) fail('podRuntime', 'is the lab\'s stand-in for kubelet; in kubernetes mode kubelet runs the pods');
  const podCidr = kube ? '' : str('podCidr');
  if (!kube) {
    const problem = podCidrProblem(podCidr);
    if (problem) fail('podCidr', problem);
  }
  if (c.kubeconfig !== undefined && (typeof c.kubeconfig !== 'string' || c.kubeconfig === '')) fail('kubeconfig', 'must be a file path');
  const routing = (c.routing ?? 'vxlan') as RoutingMode;
  if (routing !== 'vxlan' && routing !== 'geneve' && routing !== 'direct') fail('routing', `${JSON.stringify(routing)} is not vxlan, geneve or direct`);
  const num = (k: string, dflt: number, min: number, max: number): number => {
    const v = c[k] ?? dflt;
    return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? v : fail(k, `must be an integer ${min}-${max}`);
  };
  const out: AgentConfig = {
    cluster,
    clusterId: c.clusterId as number,
    node,
    etcd: c.etcd as string[],
    nodeIp,
    podCidr,
    source: mode,
    routing,
    bpfDir: str('bpfDir'),
    pinRoot: typeof c.pinRoot === 'string' ? c.pinRoot : `/sys/fs/bpf/weft/${cluster}-${node}`,
    stateDir: typeof c.stateDir === 'string' ? c.stateDir : `/var/run/weft/${cluster}/${node}`,
    tunnelDevice: typeof c.tunnelDevice === 'string' ? c.tunnelDevice : 'weft_vxlan',
    vxlanPort: num('vxlanPort', 8472, 1, 65535),
    underlayMtu: num('underlayMtu', 1500, 1280, 65535),
    audit: c.audit === true,
    podRuntime: c.podRuntime === true,
    encryption: c.encryption === undefined ? 'wireguard' : c.encryption === 'wireguard' || c.encryption === 'ipsec' || c.encryption === 'off' ? c.encryption : fail('encryption', `${JSON.stringify(c.encryption)} is not wireguard, ipsec or off`),
    encryptionStrict: c.encryptionStrict === undefined ? true : c.encryptionStrict === true ? true : c.encryptionStrict === false ? false : fail('encryptionStrict', 'must be true or false'),
    wireguardDevice: typeof c.wireguardDevice === 'string' ? c.wireguardDevice : 'weft_wg',
    wireguardPort: num('wireguardPort', 51871, 1, 65534),
    wireguardImplementation: c.wireguardImplementation === undefined ? 'auto' : c.wireguardImplementation === 'auto' || c.wireguardImplementation === 'kernel' || c.wireguardImplementation === 'userspace' ? c.wireguardImplementation : fail('wireguardImplementation', `${JSON.stringify(c.wireguardImplementation)} is not auto, kernel or userspace`),
    ipsecKeyFile: typeof c.ipsecKeyFile === 'string' && c.ipsecKeyFile !== '' ? c.ipsecKeyFile : '/etc/weft/ipsec.key',
    keyRotationIntervalSec: num('keyRotationIntervalSec', 86_400, 0, 365 * 86_400),
    keyRotationTimeoutSec: num('keyRotationTimeoutSec', 60, 1, 3600),
    mapSizes: mapSizes(c.mapSizes, fail),
    procSysNet: c.procSysNet === undefined ? '/proc/sys/net' : typeof c.procSysNet === 'string' && c.procSysNet.startsWith('/') && !/[\0\n]/.test(c.procSysNet) ? c.procSysNet : fail('procSysNet', `${JSON.stringify(c.procSysNet)} is not an absolute path`),
  };
  if (out.wireguardDevice.length > 14 || !/^[A-Za-z0-9_.-]+$/.test(out.wireguardDevice)) fail('wireguardDevice', `${JSON.stringify(out.wireguardDevice)} must be 1-14 characters of A-Z a-z 0-9 _ . - (lane 1 adds a 'b'; unique on the machine: wireguard-go's sockets are machine-wide)`);
  if (typeof c.cniPlugin === 'string') out.cniPlugin = c.cniPlugin;
  if (typeof c.kubeconfig === 'string') out.kubeconfig = c.kubeconfig;
  if (c.etcdTls !== undefined) {
    const t = c.etcdTls as EtcdTlsFiles;
    out.etcdTls = { ca: t.ca, cert: t.cert, key: t.key };
  }
  for (const k of ['serviceCidrs', 'underlayCidrs'] as const) {
    const v = c[k];
    if (v === undefined) continue;
    if (!Array.isArray(v) || v.length > 64) fail(k, 'must be a list of at most 64 IPv4 CIDRs');
    (v as unknown[]).forEach((x, i) => {
      const parsed = typeof x === 'string' ? parseCidr(x) : `${JSON.stringify(x)} is not a CIDR`;
      if (typeof parsed === 'string') fail(`${k}[${i}]`, parsed);
    });
    out[k] = [...(v as string[])];
  }
  if (c.remotePodCidrMinBits !== undefined) out.remotePodCidrMinBits = num('remotePodCidrMinBits', DEFAULT_MIN_POD_CIDR_BITS, 0, 32);
  if (c.etcdIssuer !== undefined) {
    const i = c.etcdIssuer as { url: string; tokenFile: string };
    out.etcdIssuer = { url: i.url, tokenFile: i.tokenFile };
  }
  if (c.observer !== undefined) out.observer = validateObserver(c.observer, fail);
  if (c.metrics !== undefined) out.metrics = validateMetrics(c.metrics, fail);
  if (c.conntrack !== undefined) out.conntrack = validateConntrack(c.conntrack, fail, out.mapSizes?.ct ?? SIZED_MAPS.ct);
  if (c.underlayDevice !== undefined) {
    if (typeof c.underlayDevice !== 'string' || c.underlayDevice.length > 15 || !/^[A-Za-z0-9_.@-]+$/.test(c.underlayDevice)) fail('underlayDevice', `${JSON.stringify(c.underlayDevice)} is not an interface name (1-15 characters of A-Z a-z 0-9 _ . @ -)`);
    out.underlayDevice = c.underlayDevice as string;
  }
  return out;
}

function validateObserver(raw: unknown, fail: (field: string, problem: string) => never): ObserverConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('observer', 'must be an object {bufferSize, listen, tls, export}');
  const o = raw as Record<string, unknown>;
  const extra = Object.keys(o).find((k) => !['bufferSize', 'listen', 'tls', 'export'].includes(k));
  if (extra !== undefined) fail(`observer.${extra}`, 'is not a key of observer (bufferSize, listen, tls, export)');
  const bufferSize = o.bufferSize ?? 10_000;
  if (typeof bufferSize !== 'number' || !Number.isInteger(bufferSize) || bufferSize < 1 || bufferSize > 1_000_000) fail('observer.bufferSize', `${JSON.stringify(bufferSize)} must be an integer 1-1000000`);
  const out: ObserverConfig = { bufferSize: bufferSize as number };
  if (o.listen !== undefined) {
    const m = typeof o.listen === 'string' ? /^([^\s:]+):(\d{1,5})$/.exec(o.listen) : null;
    if (!m || Number(m[2]) > 65535 || (m[1] !== '0.0.0.0' && parseIpv4(m[1]!) === undefined)) fail('observer.listen', `${JSON.stringify(o.listen)} must be IPv4:port`);
    if (o.tls === undefined) fail('observer.listen', 'needs observer.tls: the observer is served over TCP only with mutual TLS');
    out.listen = o.listen as string;
  }
  if (o.tls !== undefined) {
    const t = o.tls as Record<string, unknown>;
    if (typeof t !== 'object' || t === null || Array.isArray(t)) fail('observer.tls', 'must be an object {ca, cert, key} of file paths');
    for (const k of ['ca', 'cert', 'key']) if (typeof t[k] !== 'string' || t[k] === '') fail(`observer.tls.${k}`, 'must be a non-empty file path (PEM)');
    const extraTls = Object.keys(t).find((k) => k !== 'ca' && k !== 'cert' && k !== 'key');
    if (extraTls !== undefined) fail(`observer.tls.${extraTls}`, 'is not a key of observer.tls (ca, cert, key)');
    out.tls = { ca: t.ca as string, cert: t.cert as string, key: t.key as string };
  }
  if (o.export !== undefined) out.export = validateExport(o.export, fail);
  return out;
}

function validateExport(raw: unknown, fail: (field: string, problem: string) => never): FlowExportConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('observer.export', `must be an object {${EXPORT_KEYS.join(', ')}}`);
  const e = raw as Record<string, unknown>;
  const extra = Object.keys(e).find((k) => !EXPORT_KEYS.includes(k));
  if (extra !== undefined) fail(`observer.export.${extra}`, `is not a key of observer.export (${EXPORT_KEYS.join(', ')})`);
  const { filePath } = e;
  if (typeof filePath !== 'string' || !filePath.startsWith('/') || filePath.endsWith('/') || /[\0\n]/.test(filePath)) fail('observer.export.filePath', `${JSON.stringify(filePath)} must be an absolute file path`);
  const int = (k: string, dflt: number, min: number, max: number): number => {
    const v = e[k] ?? dflt;
    return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? v : fail(`observer.export.${k}`, `${JSON.stringify(v)} must be an integer ${min}-${max}`);
  };
  const list = (k: string): unknown[] => {
    const v = e[k] ?? [];
    return Array.isArray(v) ? v : fail(`observer.export.${k}`, 'must be a list');
  };
  const fieldMask = list('fieldMask') as string[];
  const allowList = list('allowList') as FlowFilterInput[];
  const denyList = list('denyList') as FlowFilterInput[];
  // Compiled here and dropped: the exporter compiles them again when the agent starts, from the
  // same values, so a bad entry fails the configuration, not the agent's start.
  try {
    compileFieldMask(fieldMask, 'observer.export.fieldMask');
    compileFlowFilters(allowList, denyList, { allow: 'observer.export.allowList', deny: 'observer.export.denyList' });
  } catch (err) {
    if (err instanceof FlowFieldMaskError || err instanceof FlowFilterError) fail(err.field, `${JSON.stringify(err.value)}: ${err.problem}`);
    throw err;
  }
  return {
    filePath: filePath as string,
    fieldMask: [...fieldMask],
    allowList: structuredClone(allowList),
    denyList: structuredClone(denyList),
    fileMaxSizeMb: int('fileMaxSizeMb', 10, 1, 1024),
    fileMaxBackups: int('fileMaxBackups', 5, 0, 100),
    fileCompress: typeof (e.fileCompress ?? false) === 'boolean' ? ((e.fileCompress as boolean | undefined) ?? false) : fail('observer.export.fileCompress', `${JSON.stringify(e.fileCompress)} must be true or false`),
  };
}

function validateMetrics(raw: unknown, fail: (field: string, problem: string) => never): MetricsConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('metrics', 'must be an object {listen}');
  const m = raw as Record<string, unknown>;
  const extra = Object.keys(m).find((k) => k !== 'listen');
  if (extra !== undefined) fail(`metrics.${extra}`, 'is not a key of metrics (listen)');
  const listen = parseListen(m.listen);
  if (typeof listen === 'string') fail('metrics.listen', `${JSON.stringify(m.listen)} ${listen}`);
  return { listen: m.listen as string };
}

/** The size of every sized map: the configured one, else the declared default. */
export function mapSizesOf(c: Pick<AgentConfig, 'mapSizes'>): MapSizes {
  return { ...SIZED_MAPS, ...c.mapSizes };
}

function mapSizes(raw: unknown, fail: (field: string, problem: string) => never): MapSizes {
  const out: MapSizes = { ...SIZED_MAPS };
  if (raw === undefined) return out;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('mapSizes', `must be an object of entry counts by map (${Object.keys(SIZED_MAPS).join(', ')})`);
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (!(k in SIZED_MAPS)) fail(`mapSizes.${k}`, `is not a sized map (${Object.keys(SIZED_MAPS).join(', ')})`);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_MAP_ENTRIES) fail(`mapSizes.${k}`, `${JSON.stringify(v)} must be an integer 1-${MAX_MAP_ENTRIES}`);
    out[k as SizedMap] = v as number;
  }
  return out;
}

/** The cluster's Service ranges, for the mesh's checks. */
export function serviceCidrsOf(c: Pick<AgentConfig, 'serviceCidrs'>): string[] {
  return c.serviceCidrs ?? [SERVICE_CIDR];
}

/** `ctSize`: the conntrack table's size (mapSizes.ct), which no quota can exceed. */
function validateConntrack(raw: unknown, fail: (field: string, problem: string) => never, ctSize: number): ConntrackConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('conntrack', 'must be an object');
  const c = raw as Record<string, unknown>;
  const limits: Record<keyof ConntrackConfig, [number, number]> = {
    // Up to the table's size; at least enough for a pod to work at all.
    maxEntriesPerEndpoint: [16, ctSize],
    tcpSynTimeoutSec: [1, 3600],
    tcpEstablishedTimeoutSec: [60, 7 * 86_400],
    tcpCloseTimeoutSec: [1, 3600],
    udpTimeoutSec: [1, 86_400],
    icmpTimeoutSec: [1, 86_400],
    gcMinIntervalSec: [1, 3600],
    gcMaxIntervalSec: [1, 86_400],
  };
  const out: ConntrackConfig = { ...CONNTRACK_DEFAULTS };
  for (const key of Object.keys(c)) {
    if (!(key in limits)) fail(`conntrack.${key}`, `is not a conntrack setting (${Object.keys(limits).join(', ')})`);
    const [min, max] = limits[key as keyof ConntrackConfig];
    const v = c[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(`conntrack.${key}`, `${JSON.stringify(v)} must be an integer ${min}-${max}`);
    out[key as keyof ConntrackConfig] = v as number;
  }
  if (out.gcMinIntervalSec > out.gcMaxIntervalSec) fail('conntrack.gcMinIntervalSec', `${out.gcMinIntervalSec} is above gcMaxIntervalSec ${out.gcMaxIntervalSec}`);
  return out;
}

/** Why `podCidr` cannot be a node's pod CIDR, or undefined when it can. */
export function podCidrProblem(podCidr: string): string | undefined {
  const pc = parseCidr(podCidr);
  if (typeof pc === 'string') return pc;
  if (pc.bits > 28 || pc.bits < 8) return `${podCidr} must be between /8 and /28`;
  return undefined;
}

/** The node's address on its WireGuard device: the first address of its pod CIDR (never given to a pod). */
export function routerIp(podCidr: string): string {
  const c = parseCidr(podCidr);
  if (typeof c === 'string') throw new RangeError(c);
  return formatIpv4((c.addr + 1) >>> 0);
}

/**
 * MTU for pods: the underlay minus what the way to another node adds. WireGuard and IPsec carry pod
 * packets as they are, and VXLAN only those to nodes reached in the clear, so the larger of the two
 * counts.
 */
export function podMtu(config: Pick<AgentConfig, 'underlayMtu' | 'routing'> & { encryption?: EncryptionMode }): number {
  const tunnel = config.routing === 'direct' ? 0 : VXLAN_OVERHEAD;
  const encryption = config.encryption === 'wireguard' ? WIREGUARD_OVERHEAD : config.encryption === 'ipsec' ? IPSEC_OVERHEAD : 0;
  return config.underlayMtu - Math.max(tunnel, encryption);
}
