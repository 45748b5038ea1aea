/**
 * Where the Kubernetes tools live: helm, kube-apiserver, kube-controller-manager, kube-scheduler,
 * kubectl, kubelet, containerd (with ctr and its runc shim) and etcd 3.6, built from the Go module proxy by hack/kube/build.sh into a directory
 * named by their versions (the same names as there; test/repo.test.js holds the two together).
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WeftError } from '@weft/common';

export const KUBE_VERSION = 'v1.37.2';
export const HELM_VERSION = 'v4.3.2';
export const KUBE_ETCD_VERSION = 'v3.6.16';
export const CONTAINERD_VERSION = 'v2.4.2';

export const KUBE_TOOLS = ['helm', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubectl', 'kubelet', 'etcd', 'containerd', 'ctr'] as const;
export type KubeTool = (typeof KUBE_TOOLS)[number];

export class KubeToolsError extends WeftError {
  static readonly code = 'WEFT_ERR_KUBE_TOOLS';
  constructor(message: string) {
    super(KubeToolsError.code, message);
  }
}

const kubeRoot = (env: NodeJS.ProcessEnv): string => env.WEFT_KUBE_DIR || '/var/cache/weft/kube';

/** `$WEFT_KUBE_DIR/<kube>-helm-<helm>/bin`, default under /var/cache/weft/kube, as build.sh writes it. */
export function kubeBinDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(kubeRoot(env), `${KUBE_VERSION}-helm-${HELM_VERSION}`, 'bin');
}

/**
 * Waits for a build of the tools under way (`hack/install.sh --kube-in-background` starts one beside
 * the tests; build.sh holds `build.lock` while it runs), then checks every tool is there. Rejects
 * with KubeToolsError, with the end of the build's log, when one is missing.
 */
export async function kubeToolsReady(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const lock = join(kubeRoot(env), 'build.lock');
  if (existsSync(lock)) {
    await new Promise<void>((resolve, reject) => {
      const p = spawn('flock', ['--shared', lock, 'true'], { stdio: 'ignore' });
      p.once('error', reject);
      p.once('exit', (code) => (code === 0 ? resolve() : reject(new KubeToolsError(`flock ${lock} exited with ${code}`))));
    });
  }
  try {
    for (const tool of KUBE_TOOLS) kubeTool(tool, env);
  } catch (err) {
    const log = join(kubeRoot(env), 'build.log');
    const tail = existsSync(log) ? `; the end of ${log}:\n${readFileSync(log, 'utf8').split('\n').slice(-15).join('\n')}` : '';
    throw new KubeToolsError(`${(err as Error).message}${tail}`);
  }
}

/** The path of `tool`, which must be built and executable. */
export function kubeTool(tool: KubeTool, env: NodeJS.ProcessEnv = process.env): string {
  const path = join(kubeBinDir(env), tool);
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new KubeToolsError(`${tool} is not built at ${path}: run hack/kube/build.sh (hack/install.sh does)`);
  }
  return path;
}
