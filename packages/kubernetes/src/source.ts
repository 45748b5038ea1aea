/**
 * KubernetesSource: the cluster's objects from the Kubernetes API server,
 * through the same ResourceSource surface as standalone mode's ResourceStore.
 * Each watch is a Reflector over one collection; each object goes through
 * convert.ts (the validation `weft apply` uses) and reaches the consumer under
 * the same resourceKey as in standalone mode. An object that does not
 * validate is skipped and reported (onInvalid, and a warning naming kind,
 * namespace and name) after its key is reported deleted, so a valid version
 * it replaced never outlives it: a consumer never acts on an object the
 * cluster no longer has.
 */
import { Backoff, silentLogger, type Logger } from '@weft/common';
import type { Resource, ResourceKind, ResourceSource, ResourceWatch, ResourceWatchHandler, ServiceEndpointsHandler } from '@weft/resources';
import { KubeClient, type KubeClientOptions } from './client.js';
import { describeObject, keyOf, toResource } from './convert.js';
import { EndpointSliceIndex } from './endpoint-slices.js';
import { KubernetesApiError } from './errors.js';
import { waitForNode, type NodeInfo } from './node.js';
import { Reflector, type ReflectorOptions } from './reflector.js';
import { collectionPath, objectPath, type KubeObject } from './types.js';
import { IdentityMirror } from './identity-mirror.js';
import { WeftNodePublisher } from './weft-node.js';

export interface KubernetesSourceOptions {
  /** The Weft cluster name (policies resolve against it). */
  cluster: string;
  logger?: Logger;
  /** A fresh backoff per reflector (tests make it fast). */
  backoff?: () => Backoff;
  /** Reflector tuning (watch timeout, page size). */
  reflector?: Omit<ReflectorOptions, 'logger' | 'backoff'>;
}

export class KubernetesSource implements ResourceSource {
  private readonly log: Logger;

  constructor(
    readonly client: KubeClient,
    private readonly options: KubernetesSourceOptions,
  ) {
    this.log = (options.logger ?? silentLogger()).child({ component: 'kubernetes' });
  }

  /** Loads the kubeconfig (the pod's service account unless `kubeconfig` names a file). */
  static async create(options: KubernetesSourceOptions & KubeClientOptions): Promise<KubernetesSource> {
    return new KubernetesSource(await KubeClient.create(options.kubeconfig !== undefined ? { kubeconfig: options.kubeconfig } : {}), options);
  }

  /** Reads one object from the API server (not a cache: a pod kubelet just asked CNI for may be newer than any watch). */
  async get<S = unknown>(kind: ResourceKind, name: string, namespace?: string): Promise<Resource<S> | undefined> {
    let obj: KubeObject;
    try {
      obj = await this.client.request<KubeObject>(`read ${kind} ${namespace !== undefined ? `${namespace}/` : ''}${name}`, 'GET', objectPath(kind, name, namespace));
    } catch (err) {
      if (err instanceof KubernetesApiError && err.status === 404) return undefined;
      throw err;
    }
    return toResource(kind, obj, this.options.cluster) as Resource<S> | undefined;
  }

  watch<S = unknown>(kind: ResourceKind, handler: ResourceWatchHandler<S>, logger?: Logger): ResourceWatch {
    const log = (logger ?? this.log).child({ kind });
    return this.reflect(collectionPath(kind), log, {
      onEvent: (type, obj) => {
        const key = keyOf(kind, obj);
        if (type === 'delete') return handler.onChange('delete', key, undefined);
        let resource: Resource | undefined;
        try {
          resource = toResource(kind, obj, this.options.cluster);
        } catch (err) {
          handler.onChange('delete', key, undefined);
          log.warn({ object: describeObject(kind, obj), err: (err as Error).message, code: (err as { code?: string }).code }, 'skipping an invalid object');
          handler.onInvalid?.(key, err as Error);
          return;
        }
        // Not Weft's business (a headless Service): as if it did not exist.
        handler.onChange(resource ? 'upsert' : 'delete', key, resource as Resource<S> | undefined);
      },
      onSynced: () => handler.onSynced?.(),
    });
  }

  watchServiceEndpoints(handler: ServiceEndpointsHandler, logger?: Logger): ResourceWatch {
    const index = new EndpointSliceIndex(handler);
    return this.reflect(collectionPath('EndpointSlice'), (logger ?? this.log).child({ kind: 'EndpointSlice' }), {
      onEvent: (type, obj) => index.onEvent(type, obj),
      onSynced: () => handler.onSynced?.(),
    });
  }

  /** This node's Node: its uid and IPv4 pod CIDR, waiting until node IPAM has assigned one. */
  node(name: string, signal?: AbortSignal): Promise<NodeInfo> {
    return waitForNode(this.client, name, { log: this.log, ...(signal ? { signal } : {}), ...(this.options.backoff ? { backoff: this.options.backoff() } : {}) });
  }

  /** Publishes node records as the status of the node's WeftNode. */
  weftNodePublisher(node: { name: string; uid: string }): WeftNodePublisher {
    return new WeftNodePublisher(this.client, node, this.log.child({ node: node.name }), ...(this.options.backoff ? [this.options.backoff()] : []));
  }

  /** Mirrors the cluster's identities as WeftIdentity objects. */
  identityMirror(): IdentityMirror {
    return new IdentityMirror(this.client, this.options.cluster, this.log.child({ component: 'identity-mirror' }), ...(this.options.backoff ? [this.options.backoff()] : []));
  }

  private reflect(path: string, log: Logger, handler: ConstructorParameters<typeof Reflector>[2]): Reflector {
    return new Reflector(this.client, path, handler, { ...this.options.reflector, logger: log, ...(this.options.backoff ? { backoff: this.options.backoff() } : {}) }).start();
  }
}
