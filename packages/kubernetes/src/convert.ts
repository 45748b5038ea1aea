/**
 * Kubernetes objects to Weft resources, through the very validation `weft
 * apply` uses (@weft/resources validateResource, in its Kubernetes mode), so a
 * consumer cannot tell which source an object came from. An object converts
 * completely or throws InvalidResourceError naming its kind, namespace and
 * name: nothing is half applied.
 */
import { InvalidResourceError, resourceKey, validateResource, API_VERSION, type Resource, type ResourceKind } from '@weft/resources';
import type { KubeObject } from './types.js';

/** `Kind namespace/name` (or `Kind name`), as errors and logs name an object. */
export function describeObject(kind: string, obj: KubeObject): string {
  const m = obj.metadata ?? {};
  return `${kind} ${m.namespace !== undefined ? `${m.namespace}/` : ''}${m.name ?? '(unnamed)'}`;
}

/** The key the object has in the internal model (the same resourceKey as in standalone mode). */
export function keyOf(kind: ResourceKind, obj: KubeObject): string {
  const m = obj.metadata ?? {};
  return resourceKey({ kind, metadata: { name: m.name ?? '', ...(m.namespace !== undefined ? { namespace: m.namespace } : {}) } });
}

/**
 * The resource for `obj`, or undefined for an object Weft has nothing to do with: a headless or
 * ExternalName Service (no cluster IP to load-balance). Throws InvalidResourceError otherwise.
 */
export function toResource(kind: ResourceKind, obj: KubeObject, cluster: string): Resource | undefined {
  const where = `${describeObject(kind, obj)} (from Kubernetes)`;
  if (obj.kind !== undefined && obj.kind !== kind) throw new InvalidResourceError(where, `kind: ${JSON.stringify(obj.kind)} where ${kind} was listed`);
  if (kind === 'Service') {
    const spec = (obj.spec ?? {}) as { type?: unknown; clusterIP?: unknown };
    if (spec.type === 'ExternalName' || spec.clusterIP === 'None') return undefined;
  }
  // List items of built-in kinds come without kind and apiVersion: they are the listed ones.
  return validateResource({ ...obj, kind, apiVersion: obj.apiVersion ?? API_VERSION[kind] }, where, cluster, { kubernetes: true });
}
