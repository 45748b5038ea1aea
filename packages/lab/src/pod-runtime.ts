/**
 * PodRuntime: the lab's stand-in for kubelet (the `weft agent` command runs it
 * beside the agent when the agent's config says `podRuntime: true`). For every Pod resource scheduled
 * to this node it creates the pod's network namespace, calls the CNI plugin
 * exactly as kubelet would (environment + network configuration on stdin),
 * and runs the containers' commands as host processes inside the namespace.
 * Deleting the Pod stops the processes, calls CNI DEL and removes the
 * namespace. Processes run in their own session, so an agent restart does not
 * stop them.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Logger } from '@weft/common';
import { netns, run } from '@weft/net';
import type { PodSpec, Resource, ResourceSource, ResourceWatch } from '@weft/resources';
import type { AgentConfig } from '@weft/agent';
import { podNameProblem, podNamespaceProblem } from '@weft/agent/cni-args';

interface RunningPod {
  key: string;
  namespace: string;
  name: string;
  netns: string;
  containerId: string;
  pids: number[];
}

/** The weft CLI entry, for containers whose command starts with `weft`. */
const WEFT_CLI = resolve(__dirname, '..', '..', 'cli', 'bin', 'weft.js');

const CONTAINER_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export function podNetnsName(cluster: string, namespace: string, name: string): string {
  return `weft-${cluster}-${createHash('sha1').update(`${namespace}/${name}`).digest('hex').slice(0, 10)}`;
}

export class PodRuntime {
  private watcher: ResourceWatch | undefined;
  private readonly pods = new Map<string, RunningPod>();
  private readonly stateFile: string;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly config: AgentConfig,
    private readonly resources: ResourceSource,
    private readonly agentSocket: string,
    private readonly log: Logger,
  ) {
    this.stateFile = join(config.stateDir, 'pods.json');
  }

  async start(): Promise<void> {
    try {
      for (const p of JSON.parse(readFileSync(this.stateFile, 'utf8')) as RunningPod[]) this.pods.set(p.key, p);
    } catch {
      // first start
    }
    let synced!: () => void;
    const done = new Promise<void>((r) => (synced = r));
    this.watcher = this.resources.watch<PodSpec>('Pod', {
      onChange: (type, key, res) => {
        this.queue = this.queue.then(() => (type === 'upsert' && res ? this.ensure(key, res) : this.remove(key))).catch((err: Error) => this.log.error({ key, err: err.message }, 'pod operation failed'));
      },
      onSynced: () => synced(),
    }, this.log);
    await done;
    await this.queue;
  }

  async stop(): Promise<void> {
    await this.watcher?.stop();
    await this.queue;
  }

  private async ensure(key: string, pod: Resource<PodSpec>): Promise<void> {
    if (pod.spec.nodeName !== this.config.node) return this.remove(key);
    if (this.pods.has(key)) return;
    const ns = pod.metadata.namespace ?? 'default';
    const name = pod.metadata.name;
    // These names become paths, CNI_ARGS and log file names of root processes. `weft apply` checked
    // them, but the store is etcd, which more than weft apply can write: check again where they are used.
    const problem = podNamespaceProblem(ns) ?? podNameProblem(name) ?? pod.spec.containers.map((c) => (CONTAINER_NAME.test(c.name) ? undefined : `container name ${JSON.stringify(c.name)} is not a DNS-1123 label`)).find(Boolean);
    if (problem) {
      this.log.error({ key, err: problem }, 'pod refused: not started');
      return;
    }
    const nsName = podNetnsName(this.config.cluster, ns, name);
    const containerId = createHash('sha1').update(`${this.config.cluster}/${ns}/${name}`).digest('hex').slice(0, 32);
    await netns.delete(nsName);
    await netns.add(nsName);
    try {
      await this.cni('ADD', containerId, nsName, ns, name);
    } catch (err) {
      await netns.delete(nsName);
      throw err;
    }
    const dir = join(this.config.stateDir, 'pods', `${ns}_${name}`);
    mkdirSync(dir, { recursive: true });
    const pids: number[] = [];
    for (const c of pod.spec.containers) {
      const argv = c.command[0] === 'weft' ? [process.execPath, WEFT_CLI, ...c.command.slice(1)] : c.command;
      const out = openSync(join(dir, `${c.name}.log`), 'a');
      const child = spawn('ip', ['netns', 'exec', nsName, ...argv], { detached: true, stdio: ['ignore', out, out], env: { ...process.env, WEFT_POD: `${ns}/${name}`, WEFT_CLUSTER: this.config.cluster } });
      closeSync(out);
      child.unref();
      if (child.pid) pids.push(child.pid);
    }
    this.pods.set(key, { key, namespace: ns, name, netns: nsName, containerId, pids });
    this.save();
    this.log.info({ endpoint: `${ns}/${name}`, netns: nsName, containers: pids.length }, 'pod started');
  }

  private async remove(key: string): Promise<void> {
    const p = this.pods.get(key);
    if (!p) return;
    for (const pid of p.pids) {
      try {
        process.kill(-pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    await this.cni('DEL', p.containerId, p.netns, p.namespace, p.name).catch((err: Error) => this.log.warn({ err: err.message }, 'CNI DEL failed'));
    await netns.delete(p.netns);
    this.pods.delete(key);
    this.save();
    this.log.info({ endpoint: `${p.namespace}/${p.name}` }, 'pod stopped');
  }

  /** Calls the CNI plugin binary the way kubelet does. */
  private async cni(command: 'ADD' | 'DEL', containerId: string, nsName: string, namespace: string, pod: string): Promise<void> {
    const plugin = this.config.cniPlugin ?? resolve(__dirname, '..', '..', 'cni', 'bin', 'weft-cni.js');
    const conf = { cniVersion: '1.0.0', name: 'weft', type: 'weft-cni', agentSocket: this.agentSocket };
    // The environment as kubelet gives it, passed to execve (not as `env` arguments): the plugin checks every value.
    const env = {
      ...process.env,
      CNI_COMMAND: command,
      CNI_CONTAINERID: containerId,
      CNI_NETNS: `/var/run/netns/${nsName}`,
      CNI_IFNAME: 'eth0',
      CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${namespace};K8S_POD_NAME=${pod}`,
      CNI_PATH: resolve(plugin, '..'),
    };
    await run([process.execPath, plugin], { input: JSON.stringify(conf), env });
  }

  private save(): void {
    mkdirSync(this.config.stateDir, { recursive: true });
    writeFileSync(this.stateFile, JSON.stringify([...this.pods.values()]));
  }
}
