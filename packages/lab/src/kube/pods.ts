/**
 * The lab kubelet's pods: those bound to its node whose containers all use Weft's image (the
 * chart's agent, etcd and issuer, clustermesh-apiserver, and users' pods of that image, such as
 * `weft connectivity test`'s echo servers and probes). Each container runs as a process in its own
 * root (pod-root.ts) with the pod's volumes (volumes.ts) at their mountPaths and the image
 * emulated from this repository (the Dockerfile's /opt/weft and /usr/local/bin/weft), init
 * containers first.
 *
 * A host-network pod runs in the node's network namespace. Any other gets its own, networked as
 * kubelet has its runtime do it: CNI ADD with the node's configuration and plugins (cni.ts, what
 * the agent's install-cni put on the node), the pod's IP from the result; when the pod goes, its
 * containers are stopped (SIGTERM, then SIGKILL after its grace period), CNI DEL, and the namespace
 * is removed.
 *
 * Containers restart by the pod's restartPolicy (Always, OnFailure, Never) with kubelet's doubling
 * back-off; a pod whose containers are all done is Succeeded or Failed, each container's state
 * terminated with its exit code and its termination message (the file at terminationMessagePath,
 * or its log's tail with FallbackToLogsOnError). Readiness is the pod's own exec probe, and a
 * preStop exec hook runs before the container is signalled, both inside the container; liveness
 * and startup probes are not run (a container that dies is restarted all the same). The status goes back to the API server with the node's credential whenever it
 * changes. A pod of another image is refused with ErrImageNeverPull: the lab has only Weft's.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import { join, resolve } from 'node:path';
import type { Logger } from '@weft/common';
import { netns as netnsOps } from '@weft/net';
import { kubeTime, KubeApiError, type KubeApi } from './api.js';
import { NodeCni, podIps, type CniAttachment, type CniResult, type NetworkConfig } from './cni.js';
import { startContainer, type ContainerMount } from './pod-root.js';
import { materializeVolumes, PodVolumeError, type PodForVolumes, type PodVolume } from './volumes.js';

const REPO = resolve(__dirname, '..', '..', '..', '..');
export const WEFT_IMAGE = /^ghcr\.io\/weft-mesh\/weft(:|@|$)/;
const IMAGE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Kubelet's crash-loop back-off: 10 s, doubling, at most 5 min. */
const BACKOFF_MS = { first: 10_000, max: 300_000 };
/** Kubelet keeps at most this much of a termination message. */
const MAX_MESSAGE = 4096;

interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean; subPath?: string }[];
  readinessProbe?: { exec?: { command: string[] }; periodSeconds?: number };
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  securityContext?: { privileged?: boolean };
  terminationMessagePath?: string;
  terminationMessagePolicy?: 'File' | 'FallbackToLogsOnError';
}
export interface Pod extends PodForVolumes {
  metadata: PodForVolumes['metadata'] & { deletionTimestamp?: string };
  spec: PodForVolumes['spec'] & {
    hostNetwork?: boolean;
    restartPolicy?: 'Always' | 'OnFailure' | 'Never';
    terminationGracePeriodSeconds?: number;
    initContainers?: Container[];
    containers: Container[];
    volumes?: PodVolume[];
  };
}

export interface PodRunnerOptions {
  api: KubeApi;
  node: string;
  nodeIp: string;
  /** The node's netns, where host-network containers run; pods' own are named after it. */
  netns: string;
  /** Where the node's own copies of hostPaths live (the lab's nodes share one machine). */
  nodeRoot: string;
  /** Where pods' directories go. */
  podsDir: string;
  log: Logger;
}

/** The machine's own paths a host-network pod sees as they are (not the node's copy). */
const SHARED_HOST_PATHS = ['/run/netns', '/dev/net/tun', '/sys/fs/cgroup', '/proc/sys/net'];

/** $(VAR) in a command, as kubelet expands it from the container's environment. */
export function expand(word: string, env: Record<string, string>): string {
  return word.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string) => env[name] ?? m);
}

interface Exit {
  code: number;
  signal?: NodeJS.Signals;
  startedAt: string;
  finishedAt: string;
  message: string;
}

interface ContainerRun {
  spec: Container;
  child?: ChildProcess;
  startedAt: string;
  restartCount: number;
  /** The last exit, and when the container may start again (undefined: it stays down). */
  exit?: Exit;
  restartAt?: number;
  ready: boolean;
  /** When its readiness probe last ran (ms). */
  probedAt?: number;
}

interface RunningPod {
  pod: Pod;
  dir: string;
  /** Volume name -> its directory (or the node's path, for a hostPath). */
  volumes: Map<string, string>;
  ips: string[];
  network?: { config: NetworkConfig; attachment: CniAttachment; result: CniResult };
  containers: ContainerRun[];
  /** The last status sent, without its times. */
  reported: string;
  stopping?: Promise<void>;
}

/** The pod's network namespace: the node's, named after it and the pod's uid. */
export const podNetnsName = (nodeNetns: string, uid: string): string => `${nodeNetns}-p${uid.replace(/-/g, '').slice(0, 12)}`;

/** Whether a container that exited with `code` starts again under the pod's restartPolicy. */
export function restarts(policy: Pod['spec']['restartPolicy'], code: number): boolean {
  return policy === 'Never' ? false : policy === 'OnFailure' ? code !== 0 : true;
}

/** Kubelet's back-off before the nth restart (n >= 1). */
export function backoffMs(restartCount: number): number {
  return Math.min(BACKOFF_MS.first * 2 ** Math.max(0, restartCount - 1), BACKOFF_MS.max);
}

/** The pod's phase from its containers: Running while any runs or will run again; then Succeeded if every one exited 0. */
export function podPhase(containers: Array<{ running: boolean; exit?: { code: number }; willRestart: boolean }>): 'Running' | 'Succeeded' | 'Failed' {
  if (containers.some((c) => c.running || c.willRestart || !c.exit)) return 'Running';
  return containers.every((c) => c.exit!.code === 0) ? 'Succeeded' : 'Failed';
}

export class PodRunner {
  private readonly running = new Map<string, RunningPod>();
  /** Pods refused (another image, a volume that cannot be made), by uid: the reason reported. */
  private readonly refused = new Map<string, string>();
  /** The node's paths that hostPath volumes use: the node as its CNI plugins see it. */
  private readonly nodePaths = new Set<string>();
  private readonly cni: NodeCni;

  constructor(private readonly o: PodRunnerOptions) {
    this.cni = new NodeCni({ nodeRoot: o.nodeRoot, dir: join(o.podsDir, '.cni'), nodeView: () => this.nodeView() });
  }

  /** Starts what is new, stops what went, restarts what exited, and reports what changed. */
  async sync(): Promise<void> {
    const list = await this.o.api.expect<{ items: Pod[] }>([200], 'GET', `/api/v1/pods?fieldSelector=${encodeURIComponent(`spec.nodeName=${this.o.node}`)}`);
    const pods = list.body!.items;
    const live = new Set(pods.filter((p) => !p.metadata.deletionTimestamp).map((p) => p.metadata.uid));
    for (const [uid, r] of this.running) if (!live.has(uid)) r.stopping ??= this.stop(r);
    for (const uid of this.refused.keys()) if (!live.has(uid)) this.refused.delete(uid);
    // A pod being deleted whose containers are gone: kubelet ends it for good with grace 0. The first
    // such delete only shortens the grace period of a pod already terminating; the next removes it.
    for (const pod of pods.filter((p) => p.metadata.deletionTimestamp && !this.running.has(p.metadata.uid))) {
      await this.o.api.expect([200, 404, 409], 'DELETE', `/api/v1/namespaces/${pod.metadata.namespace}/pods/${pod.metadata.name}`, { apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0, preconditions: { uid: pod.metadata.uid } });
    }
    for (const pod of pods) {
      if (!live.has(pod.metadata.uid) || this.refused.has(pod.metadata.uid)) continue;
      const r = this.running.get(pod.metadata.uid) ?? (await this.start(pod));
      if (r) await this.tick(r);
    }
  }

  /** Stops every container at once (the kubelet is stopping; `weft lab down` removes the namespaces). */
  stopAll(): void {
    for (const r of this.running.values()) for (const c of r.containers) kill(c.child, 'SIGKILL');
    this.running.clear();
  }

  private nodeView(): ContainerMount[] {
    const paths = [...this.nodePaths].sort();
    return paths.filter((p) => !paths.some((q) => q !== p && p.startsWith(`${q}/`))).map((p) => ({ source: join(this.o.nodeRoot, p), target: p }));
  }

  private env(r: Pick<RunningPod, 'pod' | 'ips'>, c: Container): Record<string, string> {
    const { pod } = r;
    const fields: Record<string, string> = { 'spec.nodeName': this.o.node, 'status.hostIP': this.o.nodeIp, 'status.podIP': r.ips[0] ?? '', 'metadata.name': pod.metadata.name, 'metadata.namespace': pod.metadata.namespace, 'metadata.uid': pod.metadata.uid };
    const env: Record<string, string> = { PATH: IMAGE_PATH, HOME: '/root', HOSTNAME: pod.spec.hostNetwork ? this.o.node : pod.metadata.name, KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' };
    for (const e of c.env ?? []) {
      const v = e.value ?? (e.valueFrom?.fieldRef ? fields[e.valueFrom.fieldRef.fieldPath] : undefined);
      if (v !== undefined) env[e.name] = expand(v, env);
    }
    return env;
  }

  private async refuse(pod: Pod, reason: string, message: string): Promise<void> {
    this.refused.set(pod.metadata.uid, message);
    this.o.log.warn({ pod: `${pod.metadata.namespace}/${pod.metadata.name}`, reason, err: message }, 'pod refused');
    const now = kubeTime();
    await this.o.api.expect([200, 404], 'PATCH', `/api/v1/namespaces/${pod.metadata.namespace}/pods/${pod.metadata.name}/status`, {
      status: {
        phase: 'Pending',
        hostIP: this.o.nodeIp,
        conditions: [{ type: 'Ready', status: 'False', reason: 'ContainersNotReady', lastTransitionTime: now }],
        containerStatuses: pod.spec.containers.map((c) => ({ name: c.name, image: c.image, imageID: '', ready: false, started: false, restartCount: 0, state: { waiting: { reason, message } } })),
      },
    }, 'application/merge-patch+json');
  }

  private async start(pod: Pod): Promise<RunningPod | undefined> {
    const where = `${pod.metadata.namespace}/${pod.metadata.name}`;
    const other = [...(pod.spec.initContainers ?? []), ...pod.spec.containers].find((c) => !WEFT_IMAGE.test(c.image));
    if (other) {
      await this.refuse(pod, 'ErrImageNeverPull', `container ${other.name}: image ${JSON.stringify(other.image)} is not available: the Weft lab runs Weft's image (ghcr.io/weft-mesh/weft) only`);
      return undefined;
    }
    // No network for it yet: wait before laying out volumes (and requesting tokens) on every sync.
    if (!pod.spec.hostNetwork && !this.cni.config().config) {
      this.o.log.debug({ pod: where }, 'no CNI network configuration on the node yet; will retry');
      return undefined;
    }
    const dir = join(this.o.podsDir, pod.metadata.uid);
    mkdirSync(dir, { recursive: true });
    const hostPath = (p: string): string => {
      if (SHARED_HOST_PATHS.some((s) => p === s || p.startsWith(`${s}/`))) return p;
      this.nodePaths.add(p);
      return join(this.o.nodeRoot, p);
    };
    let volumes: Map<string, string>;
    try {
      volumes = await materializeVolumes(this.o.api, pod, dir, hostPath);
    } catch (err) {
      // A missing Secret may yet come (kubelet retries); a volume the lab cannot make will not.
      if (!(err instanceof PodVolumeError)) throw err;
      this.o.log.warn({ pod: where, err: err.message }, 'pod volumes not ready; will retry');
      return undefined;
    }
    const r: RunningPod = { pod, dir, volumes, ips: pod.spec.hostNetwork ? [this.o.nodeIp] : [], containers: [], reported: '' };
    if (!pod.spec.hostNetwork && !(await this.attach(r))) return undefined;
    for (const c of pod.spec.initContainers ?? []) {
      const child = this.run(r, c);
      const code = await new Promise<number | null>((done) => child.on('exit', (x) => done(x)));
      if (code !== 0) {
        this.o.log.warn({ pod: where, container: c.name, code }, 'init container failed; will retry');
        await this.detach(r);
        return undefined;
      }
    }
    r.containers = pod.spec.containers.map((spec) => ({ spec, restartCount: 0, startedAt: kubeTime(), ready: false }));
    for (const c of r.containers) this.launch(r, c);
    this.running.set(pod.metadata.uid, r);
    this.o.log.info({ pod: where, containers: pod.spec.containers.map((c) => c.name), ips: r.ips }, 'pod started');
    return r;
  }

  /** The pod's own network namespace, networked by the node's CNI plugins. */
  private async attach(r: RunningPod): Promise<boolean> {
    const { pod } = r;
    const where = `${pod.metadata.namespace}/${pod.metadata.name}`;
    const { config, skipped } = this.cni.config();
    for (const why of skipped) this.o.log.warn({ pod: where, err: why }, 'CNI network configuration passed over');
    if (!config) {
      this.o.log.info({ pod: where }, 'no CNI network configuration on the node yet; will retry');
      return false;
    }
    const ns = podNetnsName(this.o.netns, pod.metadata.uid);
    const attachment: CniAttachment = {
      containerId: createHash('sha256').update(pod.metadata.uid).digest('hex'),
      netns: `/var/run/netns/${ns}`,
      ifname: 'eth0',
      podNamespace: pod.metadata.namespace,
      podName: pod.metadata.name,
      podUid: pod.metadata.uid,
    };
    await netnsOps.delete(ns);
    await netnsOps.add(ns);
    try {
      const result = await this.cni.add(config, attachment);
      r.network = { config, attachment, result };
      r.ips = podIps(result, `CNI ADD of pod ${where}`);
      writeFileSync(join(r.dir, 'network.json'), JSON.stringify(r.network, null, 2));
      return true;
    } catch (err) {
      this.o.log.warn({ pod: where, err: (err as Error).message }, 'pod network failed; will retry');
      // What ADD may have half-made is undone by DEL, as kubelet does before trying again.
      await this.cni.del(config, attachment, undefined).catch((e: Error) => this.o.log.warn({ pod: where, err: e.message }, 'CNI DEL after a failed ADD failed'));
      await netnsOps.delete(ns);
      return false;
    }
  }

  private async detach(r: RunningPod): Promise<void> {
    if (!r.network) return;
    const where = `${r.pod.metadata.namespace}/${r.pod.metadata.name}`;
    try {
      await this.cni.del(r.network.config, r.network.attachment, r.network.result);
    } catch (err) {
      this.o.log.warn({ pod: where, err: (err as Error).message }, 'CNI DEL failed');
    }
    await netnsOps.delete(podNetnsName(this.o.netns, r.pod.metadata.uid));
    r.network = undefined;
  }

  private run(r: RunningPod, c: Container): ChildProcess {
    const env = this.env(r, c);
    const mounts: ContainerMount[] = [{ source: REPO, target: '/opt/weft', readOnly: true }];
    for (const m of c.volumeMounts ?? []) {
      const source = r.volumes.get(m.name);
      if (source) mounts.push({ source: m.subPath ? join(source, m.subPath) : source, target: m.mountPath, ...(m.readOnly ? { readOnly: true } : {}) });
    }
    const hostDev = c.securityContext?.privileged === true;
    // The termination message file, in the container's own /dev (a privileged one's is the machine's).
    if (!hostDev) {
      const file = join(r.dir, `${c.name}.termination-log`);
      writeFileSync(file, '');
      mounts.push({ source: file, target: c.terminationMessagePath ?? '/dev/termination-log' });
    }
    const argv = [...(c.command ?? ['weft']), ...(c.args ?? [])].map((w) => expand(w, env));
    const links = [{ path: '/usr/local/bin/weft', to: '/opt/weft/packages/cli/bin/weft.js' }, { path: '/usr/local/bin/weft-cni', to: '/opt/weft/packages/cni/bin/weft-cni.js' }];
    const netns = r.pod.spec.hostNetwork ? this.o.netns : podNetnsName(this.o.netns, r.pod.metadata.uid);
    return startContainer({ dir: join(r.dir, c.name), argv, env, mounts, links, netns, hostDev, log: join(r.dir, `${c.name}.log`) });
  }

  private launch(r: RunningPod, c: ContainerRun): void {
    c.startedAt = kubeTime();
    const child = this.run(r, c.spec);
    c.child = child;
    child.on('exit', (code, signal) => {
      const exitCode = code ?? 128 + (signal ? constants.signals[signal] : 0);
      c.exit = { code: exitCode, ...(signal ? { signal } : {}), startedAt: c.startedAt, finishedAt: kubeTime(), message: this.message(r, c.spec, exitCode) };
      c.child = undefined;
      c.ready = false;
      c.probedAt = undefined;
      c.restartAt = !r.stopping && restarts(r.pod.spec.restartPolicy, exitCode) ? Date.now() + backoffMs(c.restartCount + 1) : undefined;
      this.o.log.info({ pod: `${r.pod.metadata.namespace}/${r.pod.metadata.name}`, container: c.spec.name, code: exitCode, restartInMs: c.restartAt ? c.restartAt - Date.now() : undefined }, 'container exited');
    });
  }

  /** The container's termination message: its file, or with FallbackToLogsOnError and a failure, its log's tail. */
  private message(r: RunningPod, c: Container, code: number): string {
    const read = (file: string, fromEnd: boolean): string => {
      try {
        const size = statSync(file).size;
        const text = readFileSync(file);
        return (fromEnd ? text.subarray(Math.max(0, size - MAX_MESSAGE)) : text.subarray(0, MAX_MESSAGE)).toString('utf8');
      } catch {
        return '';
      }
    };
    const own = read(join(r.dir, `${c.name}.termination-log`), false);
    if (own || code === 0 || c.terminationMessagePolicy !== 'FallbackToLogsOnError') return own;
    return read(join(r.dir, `${c.name}.log`), true).split('\n').slice(-80).join('\n');
  }

  /** Restarts what is due, probes readiness, and sends the status when it changed. */
  private async tick(r: RunningPod): Promise<void> {
    if (r.stopping) return;
    for (const c of r.containers) {
      if (!c.child && c.restartAt !== undefined && Date.now() >= c.restartAt) {
        c.restartCount += 1;
        c.restartAt = undefined;
        this.launch(r, c);
      }
    }
    for (const c of r.containers) {
      if (!c.child) c.ready = false;
      else if (Date.now() - (c.probedAt ?? 0) >= (c.spec.readinessProbe?.periodSeconds ?? 10) * 1000) {
        c.probedAt = Date.now();
        c.ready = await this.probe(r, c);
      }
    }
    await this.status(r);
  }

  /** The container's readiness probe (one without a probe is ready once started). */
  private async probe(r: RunningPod, c: ContainerRun): Promise<boolean> {
    if (!c.child?.pid) return false;
    return c.spec.readinessProbe?.exec ? this.exec(r, c, c.spec.readinessProbe.exec.command, 10_000) : true;
  }

  /** Runs `command` inside the running container, with its environment; true when it exits 0 within `timeoutMs`. */
  private exec(r: RunningPod, c: ContainerRun, command: string[], timeoutMs: number): Promise<boolean> {
    const pid = c.child?.pid;
    if (!pid) return Promise.resolve(false);
    const argv = ['nsenter', `--target=${pid}`, '--mount', '--net', '--root', '--wd', '--', '/usr/bin/env', '-i', ...Object.entries(this.env(r, c.spec)).map(([k, v]) => `${k}=${v}`), ...command];
    return new Promise<boolean>((done) => spawn(argv[0]!, argv.slice(1), { stdio: 'ignore', timeout: timeoutMs }).on('exit', (code) => done(code === 0)).on('error', () => done(false)));
  }

  private async status(r: RunningPod): Promise<void> {
    const phase = podPhase(r.containers.map((c) => ({ running: c.child !== undefined, ...(c.exit ? { exit: c.exit } : {}), willRestart: c.restartAt !== undefined })));
    const ready = phase === 'Running' && r.containers.every((c) => c.ready);
    const containerStatuses = r.containers.map((c) => {
      const terminated = (e: Exit) => ({ terminated: { exitCode: e.code, ...(e.signal ? { signal: constants.signals[e.signal] } : {}), reason: e.code === 0 ? 'Completed' : 'Error', ...(e.message ? { message: e.message } : {}), startedAt: e.startedAt, finishedAt: e.finishedAt } });
      const state = c.child ? { running: { startedAt: c.startedAt } } : c.restartAt !== undefined ? { waiting: { reason: 'CrashLoopBackOff', message: `back-off restarting container ${c.spec.name}` } } : c.exit ? terminated(c.exit) : { waiting: { reason: 'ContainerCreating' } };
      return { name: c.spec.name, image: c.spec.image, imageID: '', ready: c.ready, started: c.child !== undefined, restartCount: c.restartCount, state, ...(c.exit && c.child ? { lastState: terminated(c.exit) } : {}) };
    });
    const podIPs = r.ips.map((ip) => ({ ip }));
    const shape = JSON.stringify({ phase, ready, podIPs, containerStatuses: containerStatuses.map((s) => ({ ...s, state: Object.keys(s.state)[0], lastState: undefined })) });
    if (shape === r.reported) return;
    const now = kubeTime();
    const cond = (type: string, status: boolean) => ({ type, status: status ? 'True' : 'False', lastTransitionTime: now });
    try {
      await this.o.api.expect([200], 'PATCH', `/api/v1/namespaces/${r.pod.metadata.namespace}/pods/${r.pod.metadata.name}/status`, {
        status: {
          phase,
          hostIP: this.o.nodeIp,
          hostIPs: [{ ip: this.o.nodeIp }],
          ...(r.ips.length ? { podIP: r.ips[0], podIPs } : {}),
          startTime: r.containers[0]?.startedAt ?? now,
          conditions: [cond('PodScheduled', true), cond('Initialized', true), cond('ContainersReady', ready), cond('Ready', ready)],
          containerStatuses,
        },
      }, 'application/merge-patch+json');
      r.reported = shape;
    } catch (err) {
      // Deleted meanwhile: the next sync stops it.
      if (!(err instanceof KubeApiError)) throw err;
      this.o.log.warn({ pod: `${r.pod.metadata.namespace}/${r.pod.metadata.name}`, err: err.message }, 'pod status not sent; will retry');
    }
  }

  /** Each container's preStop hook, then SIGTERM, SIGKILL when the grace period is over; then the pod's network and directory go. */
  private async stop(r: RunningPod): Promise<void> {
    const where = `${r.pod.metadata.namespace}/${r.pod.metadata.name}`;
    const graceMs = Math.min(r.pod.spec.terminationGracePeriodSeconds ?? 30, 30) * 1000;
    const deadline = Date.now() + graceMs;
    await Promise.all(r.containers.map(async (c) => {
      const hook = c.spec.lifecycle?.preStop?.exec?.command;
      if (!hook || !c.child) return;
      const ok = await this.exec(r, c, hook, graceMs);
      this.o.log.info({ pod: where, container: c.spec.name, ok }, 'preStop hook ran');
    }));
    const children = r.containers.map((c) => c.child).filter((c): c is ChildProcess => c !== undefined && c.exitCode === null && c.signalCode === null);
    const exited = Promise.all(children.map((c) => new Promise((done) => c.once('exit', done))));
    for (const c of children) kill(c, 'SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((done) => (timer = setTimeout(done, Math.max(0, deadline - Date.now()))))]);
    clearTimeout(timer);
    for (const c of children) kill(c, 'SIGKILL');
    await exited;
    await this.detach(r);
    rmSync(r.dir, { recursive: true, force: true });
    this.running.delete(r.pod.metadata.uid);
    this.o.log.info({ pod: where }, 'pod stopped');
  }
}

/** Signals a container's whole process group (it runs detached, as its own group). */
function kill(child: ChildProcess | undefined, signal: NodeJS.Signals): void {
  if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch (err) {
    // ESRCH: gone between the check and the signal.
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}
