/**
 * `weft lab`: a real multi-node cluster on one machine, built from network
 * namespaces, veths, a bridge, real etcd and real agents (see layout.ts for
 * the shape). Everything the lab creates carries the `weft-` prefix or lives
 * under /var/run/weft and /sys/fs/bpf/weft, so `down` finds and removes it
 * all, even after a crash or kill -9 of any part.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { AgentClient, type AgentConfig } from '@weft/agent';
import { EtcdAuth, etcdHealthy } from '@weft/kvstore';
import { admitNode, applyClusterRoles, APISERVER_USER, createCa, issue, MESH_STATUS_PREFIX, withdrawRemote, type MeshConfig, type MeshStatus, type Pem } from '@weft/clustermesh';
import { LabError } from './errors.js';
import { alive, spawnIn, tail, waitFor, type Progress } from './procs.js';
import { buildLabImages, removeContext, startKubernetes, type LabKubernetes } from './kube-lab.js';
import { removeNodeCgroups, removeNodeMountpoints } from './kube/node-runtime.js';
import { etcdClientFiles, etcdServerFiles, issueEtcdPki, labEtcdClient, nodeEtcdFiles, readTls } from './etcd-pki.js';
import { issueObserverPki, nodeObserverFiles, OBSERVER_PORT, relayClientFiles, relayDir, relaySocket } from './observer-pki.js';
import { ObserverClient, type RelayConfig } from '@weft/observer';
import { generateMeshKey, Ip, netns, netnsNameProblem, nextKeyId, run } from '@weft/net';
import { ResourceStore, validateResource, type Resource } from '@weft/resources';
import { BRIDGE, LAB_PREFIX, LAB_STATE_DIR, PIN_ROOT, UNDERLAY_BITS, UNDERLAY_NS, WORLD_IP, WORLD_NS, labLayout, type ClusterLayout, type LabSpec, type NodeLayout } from './layout.js';

export { LabError, type Progress };

export interface LabState {
  spec: LabSpec;
  clusters: ClusterLayout[];
  createdAt: string;
  /** With `spec.kubernetes`: each cluster's API server, by cluster name. */
  kubernetes?: Record<string, LabKubernetes>;
}

const REPO = resolve(__dirname, '..', '..', '..');
const WEFT_CLI = join(REPO, 'packages', 'cli', 'bin', 'weft.js');
const STATE_FILE = join(LAB_STATE_DIR, 'lab.json');

export function readLabState(): LabState | undefined {
  try {
    return JSON.parse(readFileSync(STATE_FILE, 'utf8')) as LabState;
  } catch {
    return undefined;
  }
}

export function etcdEndpoint(c: ClusterLayout): string {
  return `unix://${c.etcdDir}/etcd:0`;
}

export function agentSocket(n: NodeLayout): string {
  return join(n.stateDir, 'agent.sock');
}

export async function labUp(spec: LabSpec, progress: Progress): Promise<LabState> {
  if (process.getuid?.() !== 0) throw new LabError('Cannot build the lab: it needs root (network namespaces, BPF)');
  for (const obj of ['bpf_lxc.o', 'bpf_overlay.o', 'bpf_host.o']) {
    if (!existsSync(join(REPO, 'bpf', 'build', obj))) throw new LabError(`Cannot build the lab: bpf/build/${obj} is missing; run npm run build`);
  }
  progress('removing any previous lab');
  await labDown(() => undefined);
  const clusters = labLayout(spec);
  const state: LabState = { spec, clusters, createdAt: new Date().toISOString() };
  mkdirSync(LAB_STATE_DIR, { recursive: true });
  writeFileSync(STATE_FILE, JSON.stringify(state, null, 1));
  // IPsec: one mesh key for every node of every cluster, as a real mesh shares one secret.
  if (spec.encryption === 'ipsec') writeIpsecKey({ keyId: 1, key: generateMeshKey() });

  progress(`underlay: bridge ${BRIDGE} in ${UNDERLAY_NS}, world host ${WORLD_IP}`);
  await netns.add(UNDERLAY_NS);
  const ul = new Ip(UNDERLAY_NS);
  await ul.addBridge(BRIDGE);
  await ul.setUp(BRIDGE);
  const attach = async (ns: string, peer: string, ip: string): Promise<void> => {
    await ul.addVeth(peer, 'ul0', { peerNetns: ns });
    await ul.setMaster(peer, BRIDGE);
    await ul.setUp(peer);
    const inner = new Ip(ns);
    await inner.addAddress('ul0', `${ip}/${UNDERLAY_BITS}`);
    await inner.setUp('ul0');
  };
  await netns.add(WORLD_NS);
  await attach(WORLD_NS, 'world', WORLD_IP);
  spawnIn(WORLD_NS, [process.execPath, WEFT_CLI, 'echo-server', '--tcp', '8080', '--udp', '9090', '--http', '8081', '--name', 'world'], join(LAB_STATE_DIR, 'world.log'));

  // Real kubelets run the chart's pods from images of this repository, built once for every node.
  const images = spec.kubernetes ? buildLabImages(progress) : undefined;
  const agentPids = new Map<string, number>();
  for (const c of clusters) {
    await netns.add(c.cpNetns);
    await attach(c.cpNetns, c.cpUlPeer, c.cpIp);
    // With Kubernetes, Weft's etcd and agents are the chart's, run by real kubelets (kube-lab.ts).
    if (!spec.kubernetes) {
      progress(`cluster ${c.name} (id ${c.id}): etcd in ${c.cpNetns} at ${c.cpIp}:2379`);
      await issueEtcdPki(c);
      await issueObserverPki(c);
      await startEtcd(c);
      await setupEtcdRbac(c);
    }
    // The world host reaches pods through their node (direct routing of replies).
    for (const n of c.nodes) await new Ip(WORLD_NS).replaceRoute([n.podCidr, 'via', n.ip]);

    for (const n of c.nodes) {
      progress(`node ${n.name}: ${n.ip}, pods ${n.podCidr}${spec.kubernetes ? '' : ', agent starting'}`);
      await netns.add(n.netns);
      await attach(n.netns, n.ulPeer, n.ip);
      await netns.sysctl(n.netns, 'net.ipv4.ip_forward', '1');
      await netns.sysctl(n.netns, 'net.ipv4.conf.all.rp_filter', '0');
      await netns.sysctl(n.netns, 'net.ipv4.conf.default.rp_filter', '0');
      if (spec.kubernetes) continue;
      const config: AgentConfig = {
        cluster: c.name,
        clusterId: c.id,
        node: n.name,
        etcd: [`${c.cpIp}:2379`],
        // Its own certificate: CN = the node, the etcd user whose role writes only this node's keys.
        etcdTls: nodeEtcdFiles(c, n),
        nodeIp: n.ip,
        podCidr: n.podCidr,
        routing: spec.routing,
        bpfDir: join(REPO, 'bpf', 'build'),
        pinRoot: n.pinRoot,
        stateDir: n.stateDir,
        tunnelDevice: spec.routing === 'geneve' ? 'weft_geneve' : 'weft_vxlan',
        vxlanPort: 8472,
        underlayMtu: 1500,
        audit: false,
        podRuntime: true,
        cniPlugin: join(REPO, 'packages', 'cni', 'bin', 'weft-cni.js'),
        encryption: spec.encryption ?? 'wireguard',
        encryptionStrict: true,
        wireguardDevice: labWireGuardDevice(c.id, n.index),
        wireguardPort: 51871,
        // Kernel WireGuard where the kernel has it (the kernel lane), else wireguard-go.
        wireguardImplementation: 'auto',
        ipsecKeyFile: IPSEC_KEY_FILE,
        keyRotationIntervalSec: 86_400,
        keyRotationTimeoutSec: 60,
        // The relay's way in: the node address, mutual TLS with the cluster's observer CA.
        observer: { bufferSize: 10_000, listen: `${n.ip}:${OBSERVER_PORT}`, tls: nodeObserverFiles(c, n) },
      };
      mkdirSync(n.stateDir, { recursive: true });
      writeFileSync(join(n.stateDir, 'agent.json'), JSON.stringify(config, null, 1));
      agentPids.set(n.name, spawnIn(n.netns, [process.execPath, WEFT_CLI, 'agent', '--config', join(n.stateDir, 'agent.json')], join(n.stateDir, 'agent.log'), { netOnly: true }));
    }
    for (const n of spec.kubernetes ? [] : c.nodes) {
      const client = new AgentClient(agentSocket(n));
      const pid = agentPids.get(n.name)!;
      await waitFor(`agent ${n.name}`, async () => {
        // An agent that died will never answer: say why now rather than after the timeout.
        if (!alive(pid)) throw new LabError(`The agent of ${n.name} exited: ${tail(join(n.stateDir, 'agent.log'))}`);
        return Boolean(await client.call('GET', '/v1/status'));
      }, 60_000, () => tail(join(n.stateDir, 'agent.log')));
      progress(`node ${n.name}: agent ready`);
    }
    if (!spec.kubernetes) await startRelay(c, progress);
    if (spec.kubernetes) {
      (state.kubernetes ??= {})[c.name] = await startKubernetes(c, clusters.length, progress, images!);
      writeFileSync(STATE_FILE, JSON.stringify(state, null, 1));
    }
  }
  if (spec.kubernetes) return state;
  if (clusters.length > 1 && spec.connect !== false) await connectClusters(clusters, progress);
  const mode = spec.encryption ?? 'wireguard';
  if (mode !== 'off') await waitEncrypted(clusters, spec.connect !== false, mode, progress);
  return state;
}

/**
 * "Up" includes encryption: every node has every other node it should reach
 * as a peer; with WireGuard, with a completed handshake (a first handshake
 * lost while devices come up is retried by WireGuard after 5 s).
 */
async function waitEncrypted(clusters: ClusterLayout[], connected: boolean, mode: 'wireguard' | 'ipsec', progress: Progress): Promise<void> {
  const total = clusters.reduce((n, c) => n + c.nodes.length, 0);
  for (const c of clusters) {
    const want = (connected ? total : c.nodes.length) - 1;
    for (const n of c.nodes) {
      const client = new AgentClient(agentSocket(n));
      await waitFor(`${mode} peers of ${n.name}: ${want}${mode === 'wireguard' ? ', with handshakes' : ''}`, async () => {
        const s = await client.encryption();
        return s.peers.length >= want && s.peers.every((p) => p.encrypted && (mode === 'ipsec' || p.lastHandshake !== undefined));
      }, 30_000, () => tail(join(n.stateDir, 'agent.log')));
    }
  }
  progress(`${mode}: every node has its ${connected ? total - 1 : 'cluster\'s'} peers${mode === 'wireguard' ? ', with a handshake' : ''}`);
}

/** The lab's IPsec mesh key, shared by every node's agent (which watches the file). */
const IPSEC_KEY_FILE = join(LAB_STATE_DIR, 'ipsec.key');

function writeIpsecKey(doc: { keyId: number; key: string }): void {
  const tmp = `${IPSEC_KEY_FILE}.new`;
  writeFileSync(tmp, JSON.stringify(doc), { mode: 0o600 });
  renameSync(tmp, IPSEC_KEY_FILE);
}

/**
 * Rotates the lab's IPsec mesh key: a new random key under the next key id,
 * written atomically where every agent watches it. Returns the new key id.
 */
export function rotateLabIpsecKey(): number {
  if (!existsSync(IPSEC_KEY_FILE)) throw new LabError('Cannot rotate IPsec keys: the lab does not run IPsec (weft lab up --encryption ipsec)');
  const { keyId } = JSON.parse(readFileSync(IPSEC_KEY_FILE, 'utf8')) as { keyId: number };
  const next = nextKeyId(keyId);
  writeIpsecKey({ keyId: next, key: generateMeshKey() });
  return next;
}

export const MESH_PORT = 32379;

/** The lab etcd's --max-txn-ops: `weft apply` to a lab cluster writes requests of up to half as many objects in one transaction. */
export const LAB_ETCD_MAX_TXN_OPS = 4096;

function meshDir(c: ClusterLayout): string {
  return join(LAB_STATE_DIR, c.name, 'clustermesh');
}

/** The cluster's CA, created on first use and kept with the lab's state. */
async function clusterCa(c: ClusterLayout): Promise<Pem> {
  const dir = meshDir(c);
  try {
    return { cert: readFileSync(join(dir, 'ca.crt'), 'utf8'), key: readFileSync(join(dir, 'ca.key'), 'utf8') };
  } catch {
    const ca = await createCa(c.name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'ca.crt'), ca.cert);
    writeFileSync(join(dir, 'ca.key'), ca.key, { mode: 0o600 });
    return ca;
  }
}

async function readMeshConfig(c: ClusterLayout): Promise<MeshConfig> {
  try {
    return JSON.parse(readFileSync(join(meshDir(c), 'config.json'), 'utf8')) as MeshConfig;
  } catch {
    const ca = await clusterCa(c);
    const server = await issue(ca, `clustermesh-${c.name}`, { ips: [c.cpIp] });
    // What remotes may not claim: this cluster's pod range and the shared underlay (mesh-admission).
    return { cluster: c.name, clusterId: c.id, etcd: [`${c.cpIp}:2379`], etcdTls: etcdClientFiles(c, APISERVER_USER), listen: `${c.cpIp}:${MESH_PORT}`, ca: ca.cert, cert: server.cert, key: server.key, remotes: [], etcdMaxTxnOps: 1024, observer: { relay: `unix://${relaySocket(c)}` }, podCidrs: [c.podRange], underlayCidrs: [`10.99.0.0/${UNDERLAY_BITS}`] };
  }
}

/**
 * Starts a cluster's etcd in its control-plane namespace (data kept across
 * restarts) and waits until it is healthy. Also how tests restart a killed one.
 */
export async function startEtcd(c: ClusterLayout): Promise<void> {
  mkdirSync(c.etcdDir, { recursive: true });
  rmSync(join(c.etcdDir, 'etcd:0'), { force: true });
  // As the chart's: TLS only, clients must hold a certificate of the cluster's etcd CA (the CN is
  // their etcd user, see setupEtcdRbac). The unix socket (unixs: TLS too) lets the host's
  // namespace reach it.
  const url = `https://${c.cpIp}:2379`;
  const peer = `http://${c.cpIp}:2380`;
  const tls = etcdServerFiles(c);
  spawnIn(c.cpNetns, [
    'etcd', '--name', `${c.name}-etcd`, '--data-dir', join(c.etcdDir, 'data'),
    '--listen-client-urls', `${url},unixs://etcd:0`, '--advertise-client-urls', url,
    '--cert-file', tls.cert, '--key-file', tls.key, '--trusted-ca-file', tls.ca, '--client-cert-auth',
    // Users' passwords are 256 random bits nobody knows (certificates are the credential): bcrypt's
    // cost buys nothing there, and at the default 10 each new user costs ~70 ms.
    '--bcrypt-cost', '4',
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `${c.name}-etcd=${peer}`,
    '--max-txn-ops', String(LAB_ETCD_MAX_TXN_OPS), '--logger', 'zap', '--log-level', 'warn',
  ], join(c.etcdDir, 'etcd.log'), { cwd: c.etcdDir });
  const probe = readTls(etcdClientFiles(c, 'root'));
  await waitFor(`etcd of cluster ${c.name}`, () => etcdHealthy({ socketPath: `${c.etcdDir}/etcd:0` }, probe), 20_000, () => tail(join(c.etcdDir, 'etcd.log')));
}

/** Roles and users of the cluster's etcd (etcd-roles.ts), one user per node, then auth on. */
async function setupEtcdRbac(c: ClusterLayout): Promise<void> {
  const kv = labEtcdClient(c, { user: 'root' });
  try {
    const auth = new EtcdAuth(kv);
    await applyClusterRoles(auth);
    await Promise.all(c.nodes.map((n) => admitNode(auth, n.name)));
  } finally {
    kv.close();
  }
}

/** The pid of the cluster's etcd, if one runs. */
export function etcdPid(c: Pick<ClusterLayout, 'cpNetns' | 'name'>): number | undefined {
  return pidInNetns(c.cpNetns, `--name\0${c.name}-etcd\0`);
}

/** The pid of the process in network namespace `ns` whose command line contains `needle` (NUL-separated arguments). */
export function pidInNetns(ns: string, needle: string): number | undefined {
  const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout.split(/\s+/).filter(Boolean);
  const pid = pids.find((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(needle);
    } catch {
      return false;
    }
  });
  return pid === undefined ? undefined : Number(pid);
}

/** A lab node's WireGuard device: unique on the machine (wireguard-go's sockets are machine-wide), at most 15 characters. */
export function labWireGuardDevice(clusterId: number, nodeIndex: number): string {
  return `weftwg${clusterId}n${nodeIndex}`;
}
const LAB_WG_SOCKET = /^weftwg\d+n\d+b?\.sock$/;
const WG_RUN_DIR = '/var/run/wireguard';

/**
 * (Re)starts the cluster's relay in its control-plane namespace (as the chart's Deployment runs
 * beside the clustermesh-apiserver), on a unix socket the host's `weft observe` and the apiserver's
 * forward reach, and waits until it reaches every node.
 */
export async function startRelay(c: ClusterLayout, progress: Progress): Promise<void> {
  const dir = relayDir(c);
  mkdirSync(dir, { recursive: true });
  const config: RelayConfig = {
    cluster: c.name,
    socket: relaySocket(c),
    peers: c.nodes.map((n) => `${n.ip}:${OBSERVER_PORT}`),
    agentTls: relayClientFiles(c),
    mesh: join(meshDir(c), 'config.json'),
    refreshSeconds: 5,
    sortWindowMs: 200,
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 1));
  const old = pidInNetns(c.cpNetns, `relay\0--config\0`);
  if (old !== undefined) process.kill(old, 'SIGKILL');
  const pid = spawnIn(c.cpNetns, [process.execPath, WEFT_CLI, 'relay', '--config', join(dir, 'config.json')], join(dir, 'relay.log'));
  const client = new ObserverClient(`unix://${relaySocket(c)}`, { timeoutSeconds: 5 });
  try {
    await waitFor(`relay of cluster ${c.name}`, async () => {
      if (!alive(pid)) throw new LabError(`The relay of ${c.name} exited: ${tail(join(dir, 'relay.log'))}`);
      if (!existsSync(relaySocket(c))) return false;
      return (await client.serverStatus(true).catch(() => undefined))?.numConnectedNodes === c.nodes.length;
    }, 30_000, () => tail(join(dir, 'relay.log')));
  } finally {
    client.close();
  }
  progress(`cluster ${c.name}: relay ready, ${c.nodes.length} nodes`);
}

/** The pid of the cluster's clustermesh-apiserver, if one runs. */
export function apiserverPid(c: Pick<ClusterLayout, 'cpNetns'>): number | undefined {
  return pidInNetns(c.cpNetns, 'clustermesh-apiserver');
}

/** (Re)starts a cluster's clustermesh-apiserver with its current configuration. */
function restartApiserver(c: ClusterLayout, config: MeshConfig): void {
  const dir = meshDir(c);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 1), { mode: 0o600 });
  const pid = apiserverPid(c);
  if (pid !== undefined) process.kill(pid, 'SIGKILL');
  spawnIn(c.cpNetns, [process.execPath, WEFT_CLI, 'clustermesh-apiserver', '--config', join(dir, 'config.json')], join(dir, 'apiserver.log'));
}

async function waitMesh(c: ClusterLayout, remotes: string[]): Promise<void> {
  const kv = labEtcdClient(c);
  try {
    await kv.delete(`${MESH_STATUS_PREFIX}${c.name}`);
    await waitFor(`cluster ${c.name} to sync from ${remotes.join(', ')}`, async () => {
      const kvs = await kv.get(`${MESH_STATUS_PREFIX}${c.name}`);
      if (!kvs) return false;
      const status = JSON.parse(kvs.value.toString()) as MeshStatus;
      return remotes.every((name) => status.remotes.some((r) => r.name === name && r.state === 'synced'));
    }, 60_000, () => tail(join(meshDir(c), 'apiserver.log')));
  } finally {
    kv.close();
  }
}

/**
 * `weft clustermesh connect`: each side's CA issues the other a client
 * certificate, each side's configuration gains the other as a remote, both
 * apiservers restart, and we wait until both links have synced.
 */
export async function meshConnect(a: ClusterLayout, b: ClusterLayout, progress: Progress): Promise<void> {
  if (a.name === b.name) throw new LabError(`Cannot connect cluster ${a.name} to itself`);
  const configs = new Map([[a.name, await readMeshConfig(a)], [b.name, await readMeshConfig(b)]]);
  for (const [local, remote] of [[a, b], [b, a]] as const) {
    const cfg = configs.get(local.name)!;
    const remoteCa = await clusterCa(remote);
    const client = await issue(remoteCa, local.name);
    // Each remote's nodes may only take pod CIDRs from its own pod range.
    cfg.remotes = [...cfg.remotes.filter((r) => r.name !== remote.name), { name: remote.name, id: remote.id, address: `${remote.cpIp}:${MESH_PORT}`, ca: remoteCa.cert, cert: client.cert, key: client.key, podCidrs: [remote.podRange] }];
  }
  for (const c of [a, b]) restartApiserver(c, configs.get(c.name)!);
  progress(`clustermesh: ${a.name} <-> ${b.name} connecting`);
  for (const c of [a, b]) await waitMesh(c, configs.get(c.name)!.remotes.map((r) => r.name));
  progress(`clustermesh: ${a.name} <-> ${b.name} synced`);
}

/** `weft clustermesh disconnect`: the reverse; each side also drops what it imported from the other. */
export async function meshDisconnect(a: ClusterLayout, b: ClusterLayout, progress: Progress): Promise<void> {
  for (const [local, remote] of [[a, b], [b, a]] as const) {
    const cfg = await readMeshConfig(local);
    cfg.remotes = cfg.remotes.filter((r) => r.name !== remote.name);
    restartApiserver(local, cfg);
    const kv = labEtcdClient(local);
    try {
      await withdrawRemote(kv, remote.name);
    } finally {
      kv.close();
    }
  }
  progress(`clustermesh: ${a.name} and ${b.name} disconnected`);
}

/** Connects every lab cluster with every other. */
async function connectClusters(clusters: ClusterLayout[], progress: Progress): Promise<void> {
  progress(`clustermesh: certificates for ${clusters.map((c) => c.name).join(', ')}`);
  for (let i = 0; i < clusters.length; i++) {
    for (let j = i + 1; j < clusters.length; j++) await meshConnect(clusters[i]!, clusters[j]!, progress);
  }
  for (const c of clusters) progress(`clustermesh: ${c.name} synced with ${clusters.filter((r) => r.name !== c.name).map((r) => r.name).join(', ')}`);
}

/** Removes everything any lab created; safe to run at any time, any number of times. */
export async function labDown(progress: Progress): Promise<{ namespaces: number }> {
  for (const k of Object.values(readLabState()?.kubernetes ?? {})) removeContext(k.context);
  // A name the lab could not have made (whitespace, '/', ...) is not ours, and ip would be refused it.
  const all = (await netns.list()).filter((n) => n.startsWith(LAB_PREFIX) && netnsNameProblem(n) === undefined);
  // Kill every process living in a lab namespace first (agents, etcd, pods, echo servers).
  for (const ns of all) {
    const { stdout } = await run(['ip', 'netns', 'pids', ns], { allowFail: true });
    for (const pid of stdout.split(/\s+/).filter(Boolean).map(Number)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  }
  // Belt and braces: pod processes carry WEFT_POD in their environment; any that escaped their
  // namespace (a crash mid-setup) are found that way.
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const env = readFileSync(`/proc/${pid}/environ`, 'utf8');
      // Also the lab's processes in the machine's namespace (the loopback forwarders), marked WEFT_LAB.
      if (Number(pid) !== process.pid && env.split('\0').some((e) => e.startsWith('WEFT_POD=') || e === 'WEFT_LAB=1')) process.kill(Number(pid), 'SIGKILL');
    } catch {
      // gone, or not ours to read
    }
  }
  // Real nodes' pods live in network namespaces of their containerd, which `ip netns` does not
  // list: they are found, ended and removed by their nodes' cgroups.
  const cgroups = await removeNodeCgroups();
  if (cgroups > 0) progress(`removed ${cgroups} cgroups of lab nodes`);
  if (all.length > 0) progress(`removing ${all.length} network namespaces`);
  for (const ns of all) await netns.delete(ns);
  // Kernel WireGuard devices live in the node namespaces (the agents create them there) and went
  // with them; wireguard-go killed with its namespace leaves its machine-wide UAPI socket behind.
  for (const f of existsSync(WG_RUN_DIR) ? readdirSync(WG_RUN_DIR) : []) if (LAB_WG_SOCKET.test(f)) rmSync(join(WG_RUN_DIR, f), { force: true });
  rmSync(PIN_ROOT, { recursive: true, force: true });
  // Mounts under the lab's state (each lab node's own bpffs), deepest first, before the files go.
  const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m.startsWith('/var/run/weft/') || m.startsWith('/run/weft/'));
  for (const m of mounts.sort((a, b) => b.length - a.length)) await run(['umount', '-l', m], { allowFail: true });
  const kept = removeNodeMountpoints();
  if (kept.length > 0) progress(`left mount points lab nodes made that are no longer empty: ${kept.join(', ')}`);
  rmSync('/var/run/weft', { recursive: true, force: true });
  return { namespaces: all.length };
}

/** The lab's demo workloads: echo servers on every node and a client. */
export function demoResources(c: ClusterLayout): Resource[] {
  const docs: unknown[] = [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo', labels: { purpose: 'demo' } } }];
  for (const n of c.nodes) {
    docs.push({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `echo-${n.index}`, namespace: 'demo', labels: { app: 'echo' } },
      spec: { nodeName: n.name, containers: [{ name: 'echo', command: ['weft', 'echo-server', '--tcp', '8080', '--udp', '9090', '--http', '8081'] }] },
    });
  }
  docs.push({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'client', namespace: 'demo', labels: { app: 'client' } },
    spec: { nodeName: c.nodes[0]!.name, containers: [{ name: 'idle', command: ['sleep', 'infinity'] }] },
  });
  return docs.map((d, i) => validateResource(d, `demo #${i + 1}`, c.name));
}

/** Applies resources to a lab cluster and waits until its pods are endpoints. */
export async function applyAndWait(c: ClusterLayout, resources: Resource[], timeoutMs = 60_000): Promise<void> {
  const kv = labEtcdClient(c);
  try {
    await new ResourceStore(kv, { maxTxnOps: LAB_ETCD_MAX_TXN_OPS }).apply(resources);
    const pods = resources.filter((r) => r.kind === 'Pod');
    await waitFor(`pods ${pods.map((p) => p.metadata.name).join(', ')} to become endpoints`, async () => {
      const { items } = await kv.list('weft/state/v1/endpoints/');
      const ready = new Set(items.map((i) => { const r = JSON.parse(i.value.toString()) as { namespace: string; pod: string }; return `${r.namespace}/${r.pod}`; }));
      return pods.every((p) => ready.has(`${p.metadata.namespace}/${p.metadata.name}`));
    }, timeoutMs, () => c.nodes.map((n) => `${n.name}: ${tail(join(n.stateDir, 'agent.log'))}`).join('\n'));
  } finally {
    kv.close();
  }
}
