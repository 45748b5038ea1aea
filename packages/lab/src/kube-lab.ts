/**
 * `weft lab up --kubernetes`: each lab cluster gets a real Kubernetes control plane in its
 * control-plane namespace (etcd, kube-apiserver with RBAC and the Node authorizer,
 * controller-manager, scheduler; packages/lab/src/kube), real nodes (kubelet and containerd, with
 * their own credentials and pod CIDRs; kube/node-runtime.ts), a kubeconfig context `weft-lab-<cluster>` in the
 * user's kubeconfig (reached through a loopback forwarder, since nothing of the lab is attached to
 * the machine's namespace), and Weft installed with `helm install charts/weft`.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { freePort } from '@weft/kvstore';
import { Ip } from '@weft/net';
import { LabError } from './errors.js';
import { adminGet, controlPlaneCommands, KUBELET_CLIENT_USER, prepareControlPlane, type ControlPlaneFiles, type ControlPlaneSpec } from './kube/control-plane.js';
import { mountNodeBpffs, type NodeImage, type NodeRuntimeSpec } from './kube/node-runtime.js';
import { kubeTool } from './kube/tools.js';
import { LAB_STATE_DIR, type ClusterLayout, type NodeLayout } from './layout.js';
import { spawnHost, spawnIn, tail, waitFor, type Progress } from './procs.js';

const REPO = resolve(__dirname, '..', '..', '..');
const WEFT_CLI = join(REPO, 'packages', 'cli', 'bin', 'weft.js');

export const KUBE_APISERVER_PORT = 6443;
export const KUBE_SERVICE_CIDR = '10.96.0.0/16';

export interface LabKubernetes {
  /** The kubeconfig context of the cluster (in the user's kubeconfig). */
  context: string;
  /** The loopback port forwarded to the cluster's API server. */
  port: number;
  /** The admin kubeconfig for the machine (server on loopback). */
  kubeconfig: string;
}

/** The lab's images (hack/images/build.sh): every pod's sandbox, and Weft's under the chart's default name. */
export const PAUSE_IMAGE = 'localhost/weft/pause';
export const WEFT_IMAGE = 'ghcr.io/weft-mesh/weft';

export interface LabImages {
  images: NodeImage[];
  sandbox: string;
}

/** Builds (or finds in its cache) the pause and Weft images, as OCI archives. */
export function buildLabImages(progress: Progress): LabImages {
  progress('images: building the pause and Weft images (hack/images/build.sh)');
  const r = spawnSync(join(REPO, 'hack', 'images', 'build.sh'), { encoding: 'utf8', timeout: 900_000 });
  if (r.status !== 0) throw new LabError(`hack/images/build.sh failed: ${(r.stderr || r.error?.message || '').trim().split('\n').slice(-10).join('\n')}`);
  const [pause, weft] = r.stdout.trim().split('\n');
  if (!pause || !weft) throw new LabError(`hack/images/build.sh printed no image archives: ${r.stdout}`);
  const tag = (archive: string): string => /-(\d+\.\d+(?:\.\d+)?)-[0-9a-f]+\.tar$/.exec(archive)?.[1] ?? 'latest';
  return { images: [{ archive: pause, name: PAUSE_IMAGE }, { archive: weft, name: WEFT_IMAGE }], sandbox: `${PAUSE_IMAGE}:${tag(pause)}` };
}

export const labContext = (c: Pick<ClusterLayout, 'name'>): string => `weft-lab-${c.name}`;
const kubeDir = (c: Pick<ClusterLayout, 'name'>): string => join(LAB_STATE_DIR, c.name, 'kube');

function kubectl(args: string[], kubeconfig?: string): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(kubeTool('kubectl'), [...(kubeconfig ? ['--kubeconfig', kubeconfig] : []), ...args], { encoding: 'utf8', timeout: 60_000 });
}

/** Each node runs its pods with a real kubelet and containerd (kube/node-runtime.ts), from `images`. */
export async function startKubernetes(c: ClusterLayout, clusters: number, progress: Progress, images: LabImages): Promise<LabKubernetes> {
  const dir = kubeDir(c);
  const spec: ControlPlaneSpec = {
    cluster: c.name,
    dir,
    host: c.cpIp,
    ports: { etcd: 12379, etcdPeer: 12380, apiserver: KUBE_APISERVER_PORT },
    serviceCidr: KUBE_SERVICE_CIDR,
    controllers: true,
    nodes: c.nodes.map((n) => n.name),
  };
  progress(`cluster ${c.name}: Kubernetes control plane in ${c.cpNetns} at ${c.cpIp}:${KUBE_APISERVER_PORT}`);
  const files = await prepareControlPlane(spec);
  const log = (component: string): string => join(dir, 'logs', `${component}.log`);
  for (const { component, argv } of controlPlaneCommands(spec)) spawnIn(c.cpNetns, argv, log(component));
  const socket = join(dir, 'apiserver.sock');
  spawnIn(c.cpNetns, [process.execPath, WEFT_CLI, 'lab', 'forward', '--listen', `unix:${socket}`, '--to', `tcp:${c.cpIp}:${KUBE_APISERVER_PORT}`], log('forward-cp'));
  const port = await freePort();
  spawnHost([process.execPath, WEFT_CLI, 'lab', 'forward', '--listen', `tcp:127.0.0.1:${port}`, '--to', `unix:${socket}`], log('forward-host'));
  const server = `https://127.0.0.1:${port}`;
  await waitFor(`the API server of ${c.name}`, async () => (await adminGet(files, '/readyz', server)).status === 200, 120_000, () => tail(log('kube-apiserver')));
  // The admin's kubeconfig for the machine: the same credential, the server on loopback.
  const kubeconfig = join(dir, 'host.kubeconfig');
  const admin = JSON.parse(readFileSync(files.adminKubeconfig, 'utf8')) as { clusters: { cluster: { server: string } }[] };
  admin.clusters[0]!.cluster.server = server;
  writeFileSync(kubeconfig, JSON.stringify(admin, null, 2), { mode: 0o600 });

  // The API server reaches kubelets (logs, exec) as this user, which kubelets authorize by SubjectAccessReview.
  const bind = kubectl(['create', 'clusterrolebinding', 'lab:kube-apiserver-kubelet-client', '--clusterrole', 'system:kubelet-api-admin', '--user', KUBELET_CLIENT_USER], kubeconfig);
  if (bind.status !== 0) throw new LabError(`kubectl create clusterrolebinding for the API server's kubelet client failed: ${bind.stderr.trim()}`);
  for (const n of c.nodes) {
    mkdirSync(n.stateDir, { recursive: true });
    // ClusterIPs from the node's host network go through the lab's kube-proxy (kube/kube-proxy.ts).
    await new Ip(n.netns).replaceRoute([KUBE_SERVICE_CIDR, 'dev', 'ul0']);
    await startNode(n, dir, files, images);
  }
  // A node is Ready once its runtime's network is: after the agent's init container has installed
  // the CNI plugin. Until then, registered (its kubelet has posted status) is enough.
  await waitFor(`the nodes of ${c.name} to be registered`, async () => {
    const r = kubectl(['get', 'nodes', '-o', 'json'], kubeconfig);
    if (r.status !== 0) return false;
    const nodes = (JSON.parse(r.stdout) as { items: { status?: { nodeInfo?: { kubeletVersion?: string } } }[] }).items;
    return nodes.length === c.nodes.length && nodes.every((n) => Boolean(n.status?.nodeInfo?.kubeletVersion));
  }, 180_000, () => tail(join(c.nodes[0]!.stateDir, 'kubelet.log')));
  progress(`cluster ${c.name}: ${c.nodes.length} nodes registered; helm install charts/weft`);

  const helm = spawnSync(kubeTool('helm'), ['install', 'weft', CHART, '--namespace', 'kube-system', ...labChartValues(c, clusters)], { encoding: 'utf8', timeout: 120_000, env: labHelmEnv(c) });
  if (helm.status !== 0) throw new LabError(`helm install charts/weft into ${c.name} failed: ${helm.stderr.trim()}`);
  const context = labContext(c);
  addContext(context, kubeconfig);
  // The chart's pods: etcd and its issuer, then an agent on every node.
  let said = '';
  await waitFor(`the chart's pods in ${c.name} to be Ready`, async () => {
    const r = kubectl(['get', 'pods', '-n', 'kube-system', '-o', 'json'], kubeconfig);
    if (r.status !== 0) return false;
    const pods = (JSON.parse(r.stdout) as { items: { metadata: { name: string }; status?: { conditions?: { type: string; status: string }[] } }[] }).items;
    const ready = pods.filter((p) => p.status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'True'));
    const now = `cluster ${c.name}: ${ready.length} of ${pods.length} of the chart's pods Ready`;
    if (now !== said) progress((said = now));
    return pods.length >= c.nodes.length + 1 && ready.length === pods.length;
  }, 180_000, () => c.nodes.map((n) => `${n.name}: ${tail(join(n.stateDir, 'kubelet.log'))}`).join('\n'));
  return { context, port, kubeconfig };
}

/**
 * Starts a real node: registers its Node with the lab's pod CIDR (as a cloud provider or
 * kubeadm's IPAM would have it before kubelet comes), then runs its containerd and kubelet
 * (`weft lab node-runtime`, in the node's network namespace and a mount namespace of its own) and
 * the Service rules of its host network (`weft lab kube-proxy`).
 */
async function startNode(n: NodeLayout, dir: string, files: ControlPlaneFiles, images: LabImages): Promise<void> {
  const node = { apiVersion: 'v1', kind: 'Node', metadata: { name: n.name }, spec: { podCIDR: n.podCidr, podCIDRs: [n.podCidr] } };
  const r = spawnSync(kubeTool('kubectl'), ['--kubeconfig', join(dir, 'host.kubeconfig'), 'create', '-f', '-'], { input: JSON.stringify(node), encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0 && !/AlreadyExists/.test(r.stderr)) throw new LabError(`registering node ${n.name} failed: ${r.stderr.trim()}`);
  const root = join(n.stateDir, 'root');
  mountNodeBpffs(root);
  const spec: NodeRuntimeSpec = {
    node: n.name,
    nodeIp: n.ip,
    root,
    kubeconfig: join(dir, `node-${n.name}.kubeconfig`),
    clientCaFile: files.caFile,
    images: images.images,
    sandboxImage: images.sandbox,
    logDir: n.stateDir,
  };
  const specFile = join(n.stateDir, 'node-runtime.json');
  writeFileSync(specFile, JSON.stringify(spec, null, 2));
  spawnIn(n.netns, ['unshare', '--mount', '--propagation', 'slave', '--', process.execPath, WEFT_CLI, 'lab', 'node-runtime', '--spec', specFile], join(n.stateDir, 'node-runtime.log'), { netOnly: true });
  spawnIn(n.netns, [process.execPath, WEFT_CLI, 'lab', 'kube-proxy', '--netns', n.netns, '--kubeconfig', join(dir, 'kube-proxy.kubeconfig'), '--node', n.name], join(n.stateDir, 'kube-proxy.log'), { netOnly: true });
}

/** The chart as the lab installs it. */
export const CHART = join(REPO, 'charts', 'weft');

/**
 * The values the lab installs the chart with: the lab's ranges, as a user gives theirs (its
 * Service CIDR: the chart's default /12 would cover the lab's pod CIDRs, 10.10x.0.0/16; its pod
 * range; its underlay), and the addresses remote clusters dial.
 */
export function labChartValues(c: ClusterLayout, clusters: number): string[] {
  return [
    '--set', `cluster.name=${c.name}`, '--set', `cluster.id=${c.id}`, '--set', `clustermesh.enabled=${clusters > 1}`,
    '--set', `cluster.serviceCidrs={${KUBE_SERVICE_CIDR}}`, '--set', `cluster.podCidrs={${c.podRange}}`, '--set', `cluster.underlayCidrs={10.99.0.0/16}`,
    '--set', `tls.server.ipAddresses={${c.nodes.map((n) => n.ip).join(',')}}`,
    // Every component's Prometheus metrics, on its node (docs/metrics.md).
    '--set', 'prometheus.enabled=true',
  ];
}

/** helm's environment for a lab cluster: its kubeconfig, and caches of the lab's own. */
export function labHelmEnv(c: Pick<ClusterLayout, 'name'>): NodeJS.ProcessEnv {
  const dir = kubeDir(c);
  return { ...process.env, KUBECONFIG: join(dir, 'host.kubeconfig'), HELM_CACHE_HOME: join(dir, 'helm', 'cache'), HELM_CONFIG_HOME: join(dir, 'helm', 'config'), HELM_DATA_HOME: join(dir, 'helm', 'data') };
}

/** Adds the cluster, user and context `name` to the user's kubeconfig (KUBECONFIG or ~/.kube/config), as kind does. */
function addContext(name: string, from: string): void {
  const cfg = JSON.parse(readFileSync(from, 'utf8')) as { clusters: { cluster: Record<string, string> }[]; users: { user: Record<string, string> }[] };
  const dir = resolve(from, '..');
  const file = (f: string, data: string): string => {
    writeFileSync(join(dir, f), Buffer.from(data, 'base64'), { mode: 0o600 });
    return join(dir, f);
  };
  const cluster = cfg.clusters[0]!.cluster;
  const user = cfg.users[0]!.user;
  const steps = [
    ['config', 'set-cluster', name, `--server=${cluster.server}`, `--certificate-authority=${file('ca.crt', cluster['certificate-authority-data']!)}`, '--embed-certs'],
    ['config', 'set-credentials', name, `--client-certificate=${file('admin.crt', user['client-certificate-data']!)}`, `--client-key=${file('admin.key', user['client-key-data']!)}`, '--embed-certs'],
    ['config', 'set-context', name, `--cluster=${name}`, `--user=${name}`],
  ];
  for (const args of steps) {
    const r = kubectl(args);
    if (r.status !== 0) throw new LabError(`kubectl ${args.slice(0, 3).join(' ')} failed: ${r.stderr.trim()}`);
  }
}

/** Removes what addContext added; a kubeconfig without them is left as it is. */
export function removeContext(name: string): void {
  for (const what of ['delete-context', 'delete-cluster', 'delete-user']) kubectl(['config', what, name]);
}
