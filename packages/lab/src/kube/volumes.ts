/**
 * A pod's volumes as kubelet lays them out, for the lab kubelet: each volume of the pod becomes a
 * directory under the pod's directory, filled from the API server with the node's own credential
 * (the Node authorizer lets a node read only the Secrets and ConfigMaps of pods bound to it, and
 * request tokens only for their ServiceAccounts):
 *
 * - secret and configMap: one file per key (or per listed item), with the volume's defaultMode
 *   (kubelet's 0644 when unset); an optional one that does not exist is an empty directory;
 * - projected: serviceAccountToken (a TokenRequest bound to the pod, with its audience and
 *   expiry), configMap, secret and downwardAPI (metadata.name, metadata.namespace, spec.nodeName)
 *   sources in one directory;
 * - emptyDir: an empty directory;
 * - hostPath: the node's own copy of the path (`hostPath(path)`; the lab's nodes share one
 *   machine), created for DirectoryOrCreate.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { WeftError } from '@weft/common';
import type { KubeApi } from './api.js';

export class PodVolumeError extends WeftError {
  static readonly code = 'WEFT_ERR_LAB_POD_VOLUME';
  constructor(message: string) {
    super(PodVolumeError.code, message);
  }
}

interface KeyToPath { key: string; path: string; mode?: number }
interface Projection {
  serviceAccountToken?: { audience?: string; expirationSeconds?: number; path: string };
  configMap?: { name: string; items?: KeyToPath[]; optional?: boolean };
  secret?: { name: string; items?: KeyToPath[]; optional?: boolean };
  downwardAPI?: { items: { path: string; fieldRef?: { fieldPath: string }; mode?: number }[] };
}
export interface PodVolume {
  name: string;
  secret?: { secretName: string; items?: KeyToPath[]; defaultMode?: number; optional?: boolean };
  configMap?: { name: string; items?: KeyToPath[]; defaultMode?: number; optional?: boolean };
  projected?: { sources: Projection[]; defaultMode?: number };
  emptyDir?: Record<string, unknown>;
  hostPath?: { path: string; type?: string };
}
export interface PodForVolumes {
  metadata: { name: string; namespace: string; uid: string };
  spec: { nodeName: string; serviceAccountName?: string; volumes?: PodVolume[] };
}

const DEFAULT_MODE = 0o644;

/** A relative path inside a volume, never above it. */
function inside(dir: string, path: string, where: string): string {
  const rel = normalize(path);
  if (rel.startsWith('/') || rel === '..' || rel.startsWith('../')) throw new PodVolumeError(`${where}: path ${JSON.stringify(path)} leaves its volume`);
  return join(dir, rel);
}

function put(file: string, data: Buffer, mode: number): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, data, { mode });
  chmodSync(file, mode);
}

/** Lays out every volume of `pod` under `dir` (one directory each); returns volume name -> directory. */
export async function materializeVolumes(api: KubeApi, pod: PodForVolumes, dir: string, hostPath: (path: string) => string): Promise<Map<string, string>> {
  const { name, namespace, uid } = pod.metadata;
  const where = (v: PodVolume): string => `volume ${v.name} of pod ${namespace}/${name}`;
  const read = async (kind: 'secrets' | 'configmaps', object: string, optional: boolean | undefined, v: PodVolume): Promise<Record<string, Buffer> | undefined> => {
    const r = await api.call<{ data?: Record<string, string>; binaryData?: Record<string, string>; message?: string }>('GET', `/api/v1/namespaces/${namespace}/${kind}/${object}`);
    if (r.status === 404 && optional) return undefined;
    if (r.status !== 200) throw new PodVolumeError(`${where(v)}: cannot read ${kind === 'secrets' ? 'Secret' : 'ConfigMap'} ${namespace}/${object}: ${r.status} ${r.body?.message ?? 'no answer'}`);
    const out: Record<string, Buffer> = {};
    for (const [k, val] of Object.entries(r.body?.data ?? {})) out[k] = kind === 'secrets' ? Buffer.from(val, 'base64') : Buffer.from(val);
    for (const [k, val] of Object.entries(r.body?.binaryData ?? {})) out[k] = Buffer.from(val, 'base64');
    return out;
  };
  const writeKeys = (target: string, data: Record<string, Buffer> | undefined, items: KeyToPath[] | undefined, mode: number, v: PodVolume): void => {
    if (!data) return;
    for (const item of items ?? Object.keys(data).map((key): KeyToPath => ({ key, path: key }))) {
      const value = data[item.key];
      if (value === undefined) throw new PodVolumeError(`${where(v)}: key ${item.key} is not in the object`);
      put(inside(target, item.path, where(v)), value, item.mode ?? mode);
    }
  };

  const out = new Map<string, string>();
  for (const v of pod.spec.volumes ?? []) {
    if (v.hostPath) {
      const path = hostPath(v.hostPath.path);
      if (v.hostPath.type === 'DirectoryOrCreate') mkdirSync(path, { recursive: true });
      out.set(v.name, path);
      continue;
    }
    const target = join(dir, 'volumes', v.name);
    mkdirSync(target, { recursive: true });
    out.set(v.name, target);
    if (v.secret) writeKeys(target, await read('secrets', v.secret.secretName, v.secret.optional, v), v.secret.items, v.secret.defaultMode ?? DEFAULT_MODE, v);
    else if (v.configMap) writeKeys(target, await read('configmaps', v.configMap.name, v.configMap.optional, v), v.configMap.items, v.configMap.defaultMode ?? DEFAULT_MODE, v);
    else if (v.projected) {
      const mode = v.projected.defaultMode ?? DEFAULT_MODE;
      for (const source of v.projected.sources) {
        if (source.serviceAccountToken) {
          const t = source.serviceAccountToken;
          const sa = pod.spec.serviceAccountName ?? 'default';
          const spec = { expirationSeconds: t.expirationSeconds ?? 3600, ...(t.audience ? { audiences: [t.audience] } : {}), boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name, uid } };
          const r = await api.call<{ status?: { token?: string }; message?: string }>('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${sa}/token`, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec });
          if (r.status !== 201 || !r.body?.status?.token) throw new PodVolumeError(`${where(v)}: no token for ServiceAccount ${namespace}/${sa}: ${r.status} ${r.body?.message ?? 'no answer'}`);
          put(inside(target, t.path, where(v)), Buffer.from(r.body.status.token), mode);
        } else if (source.configMap) {
          writeKeys(target, await read('configmaps', source.configMap.name, source.configMap.optional, v), source.configMap.items, mode, v);
        } else if (source.secret) {
          writeKeys(target, await read('secrets', source.secret.name, source.secret.optional, v), source.secret.items, mode, v);
        } else if (source.downwardAPI) {
          for (const item of source.downwardAPI.items) {
            const fields: Record<string, string> = { 'metadata.name': name, 'metadata.namespace': namespace, 'metadata.uid': uid, 'spec.nodeName': pod.spec.nodeName };
            const value = item.fieldRef ? fields[item.fieldRef.fieldPath] : undefined;
            if (value === undefined) throw new PodVolumeError(`${where(v)}: downwardAPI ${item.path}: only ${Object.keys(fields).join(', ')} are supported`);
            put(inside(target, item.path, where(v)), Buffer.from(value), item.mode ?? mode);
          }
        } else {
          throw new PodVolumeError(`${where(v)}: a projected source of a kind the lab kubelet does not support (${Object.keys(source).join(', ')})`);
        }
      }
    } else if (!v.emptyDir) {
      throw new PodVolumeError(`${where(v)}: a volume of a kind the lab kubelet does not support (${Object.keys(v).filter((k) => k !== 'name').join(', ')})`);
    }
  }
  return out;
}
