/**
 * The lab kubelet's pods: those bound to its node that run in the host network with Weft's image
 * (the chart's agent, etcd and issuer, clustermesh-apiserver). Each container runs as a process in
 * its own root (pod-root.ts) with the pod's volumes (volumes.ts) at their mountPaths and the image
 * emulated from this repository (the Dockerfile's /opt/weft and /usr/local/bin/weft), init
 * containers first; readiness is the pod's own exec probe, run inside the container; the pod's
 * status goes back to the API server with the node's credential. Pods outside the host network
 * are not run yet (issue 14).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Logger } from '@weft/common';
import { kubeTime, type KubeApi } from './api.js';
import { startContainer, type ContainerMount } from './pod-root.js';
import { materializeVolumes, type PodForVolumes, type PodVolume } from './volumes.js';

const REPO = resolve(__dirname, '..', '..', '..', '..');
export const WEFT_IMAGE = /^ghcr\.io\/weft-mesh\/weft(:|@|$)/;
const IMAGE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean; subPath?: string }[];
  readinessProbe?: { exec?: { command: string[] }; periodSeconds?: number };
}
export interface Pod extends PodForVolumes {
  metadata: PodForVolumes['metadata'] & { deletionTimestamp?: string };
  spec: PodForVolumes['spec'] & { hostNetwork?: boolean; initContainers?: Container[]; containers: Container[]; volumes?: PodVolume[] };
}

export interface PodRunnerOptions {
  api: KubeApi;
  node: string;
  nodeIp: string;
  /** The node's netns, where host-network containers run. */
  netns: string;
  /** Where the node's own copies of hostPaths live (the lab's nodes share one machine). */
  nodeRoot: string;
  /** Where pods' directories go. */
  podsDir: string;
  log: Logger;
}

/** The machine's own paths a host-network pod sees as they are (not the node's copy). */
const SHARED_HOST_PATHS = ['/run/netns', '/dev/net/tun', '/sys/fs/cgroup'];

/** $(VAR) in a command, as kubelet expands it from the container's environment. */
export function expand(word: string, env: Record<string, string>): string {
  return word.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string) => env[name] ?? m);
}

export class PodRunner {
  private readonly running = new Map<string, { pod: Pod; children: ChildProcess[]; ready: boolean }>();

  constructor(private readonly o: PodRunnerOptions) {}

  /** Starts what is new, stops what went, and reports readiness. */
  async sync(): Promise<void> {
    const list = await this.o.api.expect<{ items: Pod[] }>([200], 'GET', `/api/v1/pods?fieldSelector=${encodeURIComponent(`spec.nodeName=${this.o.node}`)}`);
    const pods = list.body!.items.filter((p) => p.spec.hostNetwork && [...(p.spec.initContainers ?? []), ...p.spec.containers].every((c) => WEFT_IMAGE.test(c.image)));
    const live = new Set(pods.filter((p) => !p.metadata.deletionTimestamp).map((p) => p.metadata.uid));
    for (const [uid, r] of this.running) {
      if (live.has(uid)) continue;
      for (const c of r.children) c.kill('SIGKILL');
      this.running.delete(uid);
      this.o.log.info({ pod: `${r.pod.metadata.namespace}/${r.pod.metadata.name}` }, 'pod stopped');
    }
    // A pod being deleted whose containers are gone: kubelet ends it for good with grace 0. The first
    // such delete only shortens the grace period of a pod already terminating; the next removes it.
    for (const pod of pods.filter((p) => p.metadata.deletionTimestamp && !this.running.has(p.metadata.uid))) {
      await this.o.api.expect([200, 404, 409], 'DELETE', `/api/v1/namespaces/${pod.metadata.namespace}/pods/${pod.metadata.name}`, { apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0, preconditions: { uid: pod.metadata.uid } });
    }
    for (const pod of pods) {
      if (!live.has(pod.metadata.uid)) continue;
      const r = this.running.get(pod.metadata.uid) ?? (await this.start(pod));
      if (!r) continue;
      const ready = await this.probe(r);
      if (ready !== r.ready) {
        r.ready = ready;
        await this.status(pod, ready);
      }
    }
  }

  stopAll(): void {
    for (const r of this.running.values()) for (const c of r.children) c.kill('SIGKILL');
    this.running.clear();
  }

  private env(pod: Pod, c: Container): Record<string, string> {
    const fields: Record<string, string> = { 'spec.nodeName': this.o.node, 'status.hostIP': this.o.nodeIp, 'status.podIP': this.o.nodeIp, 'metadata.name': pod.metadata.name, 'metadata.namespace': pod.metadata.namespace };
    const env: Record<string, string> = { PATH: IMAGE_PATH, HOME: '/root', KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' };
    for (const e of c.env ?? []) {
      const v = e.value ?? (e.valueFrom?.fieldRef ? fields[e.valueFrom.fieldRef.fieldPath] : undefined);
      if (v !== undefined) env[e.name] = expand(v, env);
    }
    return env;
  }

  private async start(pod: Pod): Promise<{ pod: Pod; children: ChildProcess[]; ready: boolean } | undefined> {
    const where = `${pod.metadata.namespace}/${pod.metadata.name}`;
    const dir = join(this.o.podsDir, pod.metadata.uid);
    mkdirSync(dir, { recursive: true });
    const hostPath = (p: string): string => (SHARED_HOST_PATHS.some((s) => p === s || p.startsWith(`${s}/`)) ? p : join(this.o.nodeRoot, p));
    const volumes = await materializeVolumes(this.o.api, pod, dir, hostPath);
    const run = (c: Container): ChildProcess => {
      const env = this.env(pod, c);
      const mounts: ContainerMount[] = [{ source: REPO, target: '/opt/weft', readOnly: true }];
      for (const m of c.volumeMounts ?? []) {
        const source = volumes.get(m.name);
        if (source) mounts.push({ source: m.subPath ? join(source, m.subPath) : source, target: m.mountPath, ...(m.readOnly ? { readOnly: true } : {}) });
      }
      const argv = [...(c.command ?? ['weft']), ...(c.args ?? [])].map((w) => expand(w, env));
      const links = [{ path: '/usr/local/bin/weft', to: '/opt/weft/packages/cli/bin/weft.js' }, { path: '/usr/local/bin/weft-cni', to: '/opt/weft/packages/cni/bin/weft-cni.js' }];
      return startContainer({ dir: join(dir, c.name), argv, env, mounts, links, netns: this.o.netns, log: join(dir, `${c.name}.log`) });
    };
    for (const c of pod.spec.initContainers ?? []) {
      const code = await new Promise<number | null>((done) => run(c).on('exit', (x) => done(x)));
      if (code !== 0) {
        this.o.log.warn({ pod: where, container: c.name, code }, 'init container failed; will retry');
        return undefined;
      }
    }
    const children = pod.spec.containers.map(run);
    const r = { pod, children, ready: false };
    this.running.set(pod.metadata.uid, r);
    await this.status(pod, false);
    this.o.log.info({ pod: where, containers: pod.spec.containers.map((c) => c.name) }, 'pod started');
    return r;
  }

  /** Every container's readiness probe, run in the container (a container without one is ready once started). */
  private async probe(r: { pod: Pod; children: ChildProcess[] }): Promise<boolean> {
    for (const [i, c] of r.pod.spec.containers.entries()) {
      const pid = r.children[i]?.pid;
      if (!pid || r.children[i]!.exitCode !== null) return false;
      if (!c.readinessProbe?.exec) continue;
      const argv = ['nsenter', `--target=${pid}`, '--mount', '--net', '--root', '--wd', '--', '/usr/bin/env', '-i', ...Object.entries(this.env(r.pod, c)).map(([k, v]) => `${k}=${v}`), ...c.readinessProbe.exec.command];
      const ok = await new Promise<boolean>((done) => spawn(argv[0]!, argv.slice(1), { stdio: 'ignore', timeout: 10_000 }).on('exit', (code) => done(code === 0)).on('error', () => done(false)));
      if (!ok) return false;
    }
    return true;
  }

  private async status(pod: Pod, ready: boolean): Promise<void> {
    const now = kubeTime();
    const cond = (type: string, status: boolean) => ({ type, status: status ? 'True' : 'False', lastTransitionTime: now });
    await this.o.api.expect([200], 'PATCH', `/api/v1/namespaces/${pod.metadata.namespace}/pods/${pod.metadata.name}/status`, {
      status: {
        phase: 'Running',
        hostIP: this.o.nodeIp,
        hostIPs: [{ ip: this.o.nodeIp }],
        podIP: this.o.nodeIp,
        podIPs: [{ ip: this.o.nodeIp }],
        startTime: now,
        conditions: [cond('PodScheduled', true), cond('Initialized', true), cond('ContainersReady', ready), cond('Ready', ready)],
        containerStatuses: pod.spec.containers.map((c) => ({ name: c.name, image: c.image, imageID: '', ready, started: true, restartCount: 0, state: { running: { startedAt: now } } })),
      },
    }, 'application/merge-patch+json');
  }
}
