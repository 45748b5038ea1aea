/**
 * Where the Kubernetes tools live: helm, kube-apiserver, kube-controller-manager, kube-scheduler,
 * kubectl, kubelet, containerd (with ctr and its runc shim) and etcd 3.6, built from the Go module proxy by hack/kube/build.sh into a directory
 * named by their versions (the same names as there; test/repo.test.js holds the two together).
 */
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { WeftError } from '@weft/common';

export const KUBE_VERSION = 'v1.37.2';
export const HELM_VERSION = 'v4.3.2';
export const KUBE_ETCD_VERSION = 'v3.6.16';
export const CONTAINERD_VERSION = 'v2.4.2';

export type KubeTool = 'helm' | 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler' | 'kubectl' | 'kubelet' | 'etcd' | 'containerd' | 'ctr';

export class KubeToolsError extends WeftError {
  static readonly code = 'WEFT_ERR_KUBE_TOOLS';
  constructor(message: string) {
    super(KubeToolsError.code, message);
  }
}

/** `$WEFT_KUBE_DIR/<kube>-helm-<helm>/bin`, default under /var/cache/weft/kube, as build.sh writes it. */
export function kubeBinDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.WEFT_KUBE_DIR || '/var/cache/weft/kube', `${KUBE_VERSION}-helm-${HELM_VERSION}`, 'bin');
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
