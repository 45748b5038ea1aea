/**
 * ResourceSource: where the agent and the clustermesh-apiserver read the
 * cluster's objects. Standalone mode's ResourceStore (etcd) and the Kubernetes
 * source (@weft/kubernetes, informers on the API server) both implement it and
 * deliver the same validated Resource objects under the same keys
 * (resourceKey), so every consumer behaves the same in both modes. Leaf module.
 */
import type { Logger } from '@weft/common';
import type { Resource, ResourceKind } from './types.js';

/** What a watch of one kind tells its consumer. Callbacks are synchronous. */
export interface ResourceWatchHandler<S = unknown> {
  /** An object appeared or changed (`resource` set), or went away (`resource` undefined); `key` is its resourceKey. */
  onChange(type: 'upsert' | 'delete', key: string, resource: Resource<S> | undefined): void;
  /** Every object that existed when the watch started has been delivered. */
  onSynced?(): void;
  /** An object that is not a valid resource: skipped. The Kubernetes source reports its key deleted first, so no older valid version outlives it. */
  onInvalid?(key: string, err: Error): void;
}

/** A running watch; stop() ends it (no callback after it resolves). */
export interface ResourceWatch {
  stop(): Promise<void>;
}

/** Ready backend addresses of Services, keyed by the Service's resourceKey. */
export interface ServiceEndpointsHandler {
  /** `ready` is the set of ready IPv4 addresses; undefined when the Service has no EndpointSlice left. */
  onChange(key: string, ready: ReadonlySet<string> | undefined): void;
  onSynced?(): void;
}

export interface ResourceSource {
  /** One object, or undefined when it does not exist. */
  get<S = unknown>(kind: ResourceKind, name: string, namespace?: string): Promise<Resource<S> | undefined>;
  /** Lists then watches one kind. */
  watch<S = unknown>(kind: ResourceKind, handler: ResourceWatchHandler<S>, logger?: Logger): ResourceWatch;
  /**
   * Kubernetes only: which addresses each Service may use, from its EndpointSlices (readiness).
   * A source without it (standalone) leaves backends to Service selectors alone.
   */
  watchServiceEndpoints?(handler: ServiceEndpointsHandler, logger?: Logger): ResourceWatch;
}
