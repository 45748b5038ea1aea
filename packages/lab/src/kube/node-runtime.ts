/**
 * A real Kubernetes node for the lab: containerd 2 (with Debian's runc) and kubelet, built by
 * hack/kube/build.sh, in the lab node's network namespace and a mount namespace of their own.
 *
 * Every lab node shares the machine's file system, so the paths a node's runtime and its pods'
 * hostPath volumes use (/etc/cni/net.d, /opt/cni/bin, /var/lib/kubelet, /var/lib/containerd,
 * /run/containerd, /sys/fs/bpf, /run/netns, /var/run/weft, ...) are bound from the node's own root
 * (`<node state>/root`) in that mount namespace, which is a slave of the machine's: nothing the
 * node mounts reaches the machine, and each node's kubelet, containerd, CNI plugin and pods see
 * their node's files at the paths a real node has them. The mount points the machine lacks are
 * made once (empty directories) and listed in LAB_MOUNTPOINTS, which `weft lab down` removes.
 * Each node has its own cgroup root, `/weft-lab/<node>`, in every hierarchy (cgroupfs driver;
 * these machines have cgroup v1 and no systemd).
 *
 * `nodeRuntimePlan` is pure (tested without root); `runNodeRuntime` carries it out, inside the
 * namespaces (`weft lab node-runtime`), and supervises the two daemons.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, realpathSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { AbortedError, sleep, WeftError, type Logger } from '@weft/common';
import { ensureBpffs } from '@weft/datapath';
import { run } from '@weft/net';
import { kubeBinDir } from './tools.js';

export class NodeRuntimeError extends WeftError {
  static readonly code = 'WEFT_ERR_LAB_NODE_RUNTIME';
  constructor(message: string, options?: { cause?: unknown }) {
    super(NodeRuntimeError.code, message, options);
  }
}

/** The machine's mount points made for lab nodes, one per line, for `weft lab down` to remove. */
export const LAB_MOUNTPOINTS = '/var/run/weft/mountpoints';
/** The parent of every lab node's cgroup root, in each cgroup hierarchy. */
export const LAB_CGROUP_PARENT = 'weft-lab';
const CGROUP_FS = '/sys/fs/cgroup';

/**
 * The paths of a node bound from its root, in mount order. /run/weft (/var/run/weft) is last: the
 * lab's own state, node roots included, lives under it, and the bind hides it.
 */
export const NODE_PATHS = [
  '/etc/kubernetes',
  '/etc/containerd',
  '/etc/cni/net.d',
  '/opt/cni/bin',
  '/var/lib/kubelet',
  '/var/lib/containerd',
  '/run/containerd',
  '/var/log/pods',
  '/var/log/containers',
  '/var/lib/weft',
  '/sys/fs/bpf',
  '/run/netns',
  '/run/weft',
] as const;

export const CONTAINERD_SOCKET = '/run/containerd/containerd.sock';

export interface NodeImage {
  /** An OCI archive (hack/images/build.sh). */
  archive: string;
  /** The repository its tag is imported under (`ctr images import --base-name`). */
  name: string;
}

export interface NodeRuntimeSpec {
  node: string;
  nodeIp: string;
  /** The node's root: NODE_PATHS are `<root><path>`. */
  root: string;
  /** The node's kubelet credential (system:node:<name>). */
  kubeconfig: string;
  /** The cluster CA, which signs the API server's client certificate for kubelets. */
  clientCaFile: string;
  images: NodeImage[];
  /** The image of every pod's sandbox (imported with `images`). */
  sandboxImage: string;
  /** containerd.log and kubelet.log go here. */
  logDir: string;
  /** Where kubelet, containerd, ctr and its shim are (default: hack/kube/build.sh's directory). */
  binDir?: string;
  runc?: string;
}

export const nodeCgroupRoot = (node: string): string => `/${LAB_CGROUP_PARENT}/${node}`;

/** containerd's configuration (version 3) for a lab node. */
export function containerdConfig(spec: Pick<NodeRuntimeSpec, 'sandboxImage' | 'runc' | 'binDir'>): string {
  const q = (s: string): string => JSON.stringify(s);
  return [
    'version = 3',
    `root = ${q('/var/lib/containerd')}`,
    `state = ${q('/run/containerd')}`,
    // NRI's socket and the opt plugin's directory are machine-wide paths (/var/run/nri,
    // /opt/containerd) that lab nodes would share; the tracing and block snapshotters are unused.
    'disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.blockfile"]',
    '',
    '[grpc]',
    `  address = ${q(CONTAINERD_SOCKET)}`,
    '[ttrpc]',
    `  address = ${q(`${CONTAINERD_SOCKET}.ttrpc`)}`,
    '',
    "[plugins.'io.containerd.cri.v1.images'.pinned_images]",
    `  sandbox = ${q(spec.sandboxImage)}`,
    '',
    "[plugins.'io.containerd.cri.v1.runtime']",
    // These machines withhold CAP_SYS_RESOURCE: runc may not lower a container's oom_score_adj below containerd's.
    '  restrict_oom_score_adj = true',
    '  cdi_spec_dirs = []',
    "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]",
    `  BinaryName = ${q(spec.runc ?? '/usr/sbin/runc')}`,
    '  SystemdCgroup = false',
    "[plugins.'io.containerd.cri.v1.runtime'.cni]",
    `  bin_dirs = [${q('/opt/cni/bin')}]`,
    `  conf_dir = ${q('/etc/cni/net.d')}`,
    // containerd brings a pod's loopback up itself: the node's CNI directory holds only what Weft installs.
    '  use_internal_loopback = true',
    '',
  ].join('\n');
}

/** kubelet's configuration for a lab node. */
export function kubeletConfig(spec: Pick<NodeRuntimeSpec, 'node' | 'nodeIp'>): Record<string, unknown> {
  return {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    address: spec.nodeIp,
    port: 10250,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: 10248,
    // The API server's kubelet client is known by its certificate and authorized by SubjectAccessReview, as on kubeadm's nodes.
    authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: '/etc/kubernetes/pki/ca.crt' } },
    authorization: { mode: 'Webhook' },
    containerRuntimeEndpoint: `unix://${CONTAINERD_SOCKET}`,
    // No systemd and cgroup v1 on these machines (docs/machines.md); kubelet refuses v1 unless told.
    cgroupDriver: 'cgroupfs',
    cgroupRoot: nodeCgroupRoot(spec.node),
    failCgroupV1: false,
    failSwapOn: false,
    // kubelet may not lower its own oom_score_adj without CAP_SYS_RESOURCE, which these machines withhold.
    oomScoreAdj: 0,
    podLogsDir: '/var/log/pods',
    clusterDomain: 'cluster.local',
    // No cluster DNS in the lab, and pods get no resolver of the machine's: nothing of a pod's may leave it.
    resolvConf: '',
    // Every lab node reports the machine's one disk: eviction and image GC by its fill would take
    // pods and the never-pulled images from all of them at once.
    evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'nodefs.inodesFree': '1%', 'imagefs.available': '1%' },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    rotateCertificates: false,
    serverTLSBootstrap: false,
  };
}

export interface NodeRuntimePlan {
  /** [source, target] binds, in order. */
  binds: [string, string][];
  files: { path: string; content: string; mode?: number }[];
  containerd: string[];
  kubelet: string[];
  imports: string[][];
  /** ctr's argv prefix (address and namespace). */
  ctr: string[];
}

/** Everything the node runtime does, computed from its spec and the files it reads. */
export function nodeRuntimePlan(spec: NodeRuntimeSpec, read: (path: string) => string = (p) => readFileSync(p, 'utf8')): NodeRuntimePlan {
  const bin = spec.binDir ?? kubeBinDir();
  // Read before any bind: the kubeconfig and CA live under /var/run/weft, which the last bind hides.
  const files = [
    { path: '/etc/kubernetes/kubelet.conf', content: read(spec.kubeconfig), mode: 0o600 },
    { path: '/etc/kubernetes/pki/ca.crt', content: read(spec.clientCaFile) },
    { path: '/var/lib/kubelet/config.yaml', content: `${JSON.stringify(kubeletConfig(spec), null, 2)}\n` },
    { path: '/etc/containerd/config.toml', content: containerdConfig(spec) },
  ];
  const ctr = [join(bin, 'ctr'), '--address', CONTAINERD_SOCKET, '--namespace', 'k8s.io'];
  return {
    binds: NODE_PATHS.map((p) => [join(spec.root, p), p]),
    files,
    containerd: [join(bin, 'containerd'), '--config', '/etc/containerd/config.toml', '--log-level', 'info'],
    kubelet: [
      join(bin, 'kubelet'), '--config', '/var/lib/kubelet/config.yaml', '--kubeconfig', '/etc/kubernetes/kubelet.conf',
      '--hostname-override', spec.node, '--node-ip', spec.nodeIp, '--root-dir', '/var/lib/kubelet', '--v', '1',
    ],
    imports: spec.images.map((i) => [...ctr, 'images', 'import', '--base-name', i.name, '--local', i.archive]),
    ctr,
  };
}

/** The machine's v1 hierarchies (and the v2 one, if mounted) under /sys/fs/cgroup. */
export function cgroupHierarchies(base = CGROUP_FS): string[] {
  if (!existsSync(base)) return [];
  if (existsSync(join(base, 'cgroup.controllers'))) return [base];
  return readdirSync(base).map((d) => join(base, d)).filter((d) => {
    try {
      return statSync(d).isDirectory() && existsSync(join(d, 'cgroup.procs'));
    } catch {
      return false;
    }
  });
}

/** Makes the node's cgroup root in every hierarchy; a new cpuset group takes its parent's CPUs and memory nodes. */
function makeCgroupRoot(node: string): void {
  for (const h of cgroupHierarchies()) {
    let path = h;
    for (const part of nodeCgroupRoot(node).split('/').filter(Boolean)) {
      const parent = path;
      path = join(path, part);
      if (existsSync(path)) continue;
      mkdirSync(path);
      for (const f of ['cpuset.cpus', 'cpuset.mems']) {
        if (existsSync(join(parent, f))) writeFileSync(join(path, f), readFileSync(join(parent, f)));
      }
    }
  }
}

/** Creates `dir` and any missing parent, listing each one made in LAB_MOUNTPOINTS. */
function makeMountpoint(dir: string, record: string[]): void {
  if (existsSync(dir)) return;
  makeMountpoint(dirname(dir), record);
  try {
    mkdirSync(dir);
    record.push(dir);
  } catch (err) {
    // Another node, starting beside this one, made it first.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

/**
 * Runs the node: binds its paths, starts containerd, imports its images, starts kubelet, and
 * waits. Must run as root, in the node's network namespace and a new mount namespace that is a
 * slave of the machine's (`unshare --mount --propagation slave`). Returns when `signal` aborts
 * (kubelet and containerd are stopped) and throws when either daemon exits by itself.
 */
export async function runNodeRuntime(spec: NodeRuntimeSpec, log: Logger, signal: AbortSignal): Promise<void> {
  const plan = nodeRuntimePlan(spec);
  const made: string[] = [];
  for (const [source, target] of plan.binds) {
    mkdirSync(source, { recursive: true });
    makeMountpoint(target, made);
  }
  if (made.length > 0) appendFileSync(LAB_MOUNTPOINTS, made.map((m) => `${m}\n`).join(''));
  // Log files are opened before the binds hide the lab's state directory.
  const logs = { containerd: openSync(join(spec.logDir, 'containerd.log'), 'a'), kubelet: openSync(join(spec.logDir, 'kubelet.log'), 'a') };
  const children: ChildProcess[] = [];
  try {
    for (const [source, target] of plan.binds) {
      // The machine's own mount there (its bpffs, its /run/netns) goes from this namespace: stacked
      // under the node's, it would be what containerd's propagation check finds.
      while (isMountpoint(target)) await run(['umount', '--lazy', target]);
      await run(['mount', '--bind', source, target]);
    }
    // Every mount shared, as on a systemd machine: what containerd or a pod mounts later (pod
    // network namespaces, bpffs) reaches the containers that mount the path with HostToContainer
    // or Bidirectional propagation. Shared within this namespace only: it stays the machine's slave.
    await run(['mount', '--make-rshared', '/']);
    for (const f of plan.files) {
      mkdirSync(dirname(f.path), { recursive: true });
      writeFileSync(f.path, f.content, { mode: f.mode ?? 0o644 });
    }
    makeCgroupRoot(spec.node);
    log.info({ binds: plan.binds.length, cgroupRoot: nodeCgroupRoot(spec.node) }, 'node file system and cgroups ready');

    let fail!: (err: Error) => void;
    const exited = new Promise<never>((_, reject) => (fail = reject));
    exited.catch(() => undefined);
    const start = (name: 'containerd' | 'kubelet', argv: string[]): void => {
      const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', logs[name], logs[name]] });
      children.push(child);
      child.once('exit', (code, sig) => fail(new NodeRuntimeError(`${name} of node ${spec.node} exited (${code ?? sig}); see ${join(spec.logDir, `${name}.log`)}`)));
    };
    start('containerd', plan.containerd);
    await Promise.race([exited, waitForContainerd(plan.ctr, signal)]);
    for (const argv of plan.imports) {
      const t0 = Date.now();
      await Promise.race([exited, run(argv)]);
      log.info({ image: argv.at(-1), ms: Date.now() - t0 }, 'image imported');
    }
    start('kubelet', plan.kubelet);
    log.info({ node: spec.node }, 'kubelet started');
    await Promise.race([exited, new Promise<void>((done) => (signal.aborted ? done() : signal.addEventListener('abort', () => done(), { once: true })))]);
  } finally {
    // kubelet first, then containerd; pods keep running, as on a real node whose kubelet stops.
    for (const child of children.reverse()) await stopChild(child);
    closeSync(logs.containerd);
    closeSync(logs.kubelet);
  }
}

function isMountpoint(path: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === path);
}

async function waitForContainerd(ctr: string[], signal: AbortSignal): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await run([...ctr, 'version']);
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new NodeRuntimeError(`containerd did not answer on ${CONTAINERD_SOCKET} within 60 s`, { cause: err });
    }
    try {
      await sleep(200, signal);
    } catch (err) {
      if (err instanceof AbortedError) return;
      throw err;
    }
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await gone;
  clearTimeout(timer);
}

/** Mounts a bpffs of the node's own at `<root>/sys/fs/bpf` (in the machine's mount namespace, where the lab and its tests look at its pins), unless one is there. */
export function mountNodeBpffs(root: string): string {
  const bpf = join(root, 'sys', 'fs', 'bpf');
  mkdirSync(bpf, { recursive: true });
  // As /proc/mounts names it (/var/run is a link to /run), so a second call finds the first's mount.
  ensureBpffs(realpathSync(bpf));
  return bpf;
}

/**
 * Ends every process in a lab node's cgroups (the pods' containers, which live in network
 * namespaces of containerd's that `ip netns` does not list) and removes the cgroups, deepest
 * first. Returns how many cgroups were removed; throws if some stay (a process that would not die).
 */
export async function removeNodeCgroups(hierarchies = cgroupHierarchies()): Promise<number> {
  let removed = 0;
  for (let attempt = 0; ; attempt++) {
    const left: string[] = [];
    for (const h of hierarchies) {
      const top = join(h, LAB_CGROUP_PARENT);
      if (!existsSync(top)) continue;
      for (const dir of cgroupsDeepestFirst(top)) {
        let procs: string[] = [];
        try {
          procs = readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
        } catch {
          continue;
        }
        for (const pid of procs) {
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {
            // gone already
          }
        }
        try {
          rmdirSync(dir);
          removed++;
        } catch {
          left.push(dir);
        }
      }
    }
    if (left.length === 0) return removed;
    if (attempt >= 100) throw new NodeRuntimeError(`Could not remove the lab's cgroups ${left.join(', ')}: processes in them would not end`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function cgroupsDeepestFirst(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) out.push(...cgroupsDeepestFirst(join(dir, e.name)));
  out.push(dir);
  return out;
}

/** Removes the mount points lab nodes made on the machine (LAB_MOUNTPOINTS), deepest first; one that is not empty is left and returned. */
export function removeNodeMountpoints(): string[] {
  if (!existsSync(LAB_MOUNTPOINTS)) return [];
  const dirs = [...new Set(readFileSync(LAB_MOUNTPOINTS, 'utf8').split('\n').filter((l) => l.startsWith('/')))];
  const kept: string[] = [];
  for (const d of dirs.sort((a, b) => b.length - a.length)) {
    try {
      rmdirSync(d);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') kept.push(d);
    }
  }
  return kept;
}
