/**
 * WeftNodePublisher: this node's record as its cluster-scoped WeftNode, for
 * `kubectl get weftnodes` and anything else that reads the Kubernetes way:
 * spec the node's place (cluster, cluster id, node IP, pod CIDR, routing),
 * status what peers need to encrypt to it (WireGuard public keys and rotation
 * state, or IPsec key ids). The kvstore record stays the one the agents and
 * the clustermesh sync from; this copy is published in the background,
 * latest value wins, and a failure (API server away, CRD missing, RBAC) is
 * retried with backoff without holding up the agent.
 *
 * Both writes are server-side apply (field manager `weft-agent`), one
 * idempotent request each: the object with its spec, owned by the Node
 * (garbage-collected with it), when the spec changed; then the status through
 * the status subresource.
 */
import { Backoff, sleep, type Logger } from '@weft/common';
import type { KubeClient } from './client.js';
import { KubernetesApiError } from './errors.js';
import { objectPath } from './types.js';

export const FIELD_MANAGER = 'weft-agent';
const APPLY = 'application/apply-patch+yaml';

export interface WeftNodeContent {
  spec: { cluster: string; clusterId: number; nodeIp: string; podCidr: string; routing: string };
  status: { wireguard?: unknown; ipsec?: unknown };
}

export class WeftNodePublisher {
  private pending: WeftNodeContent | undefined;
  /** The spec last applied (JSON), '' when the object may not exist. */
  private appliedSpec = '';
  private loop: Promise<void> | undefined;
  private readonly abort = new AbortController();
  /** Counters for status and tests. */
  readonly stats = { published: 0, failures: 0 };

  constructor(
    private readonly client: KubeClient,
    private readonly node: { name: string; uid: string },
    private readonly log: Logger,
    private readonly backoff = new Backoff({ initialMs: 500, maxMs: 30_000 }),
  ) {}

  /** Publishes `content` soon (replacing any value not yet published). */
  publish(content: WeftNodeContent): void {
    this.pending = content;
    if (this.loop) return;
    this.loop = this.drain().finally(() => {
      this.loop = undefined;
      // A value that arrived as the loop was ending.
      if (this.pending && !this.abort.signal.aborted) this.publish(this.pending);
    });
  }

  /** Resolves when everything handed to publish() is out (or stop() was called). */
  async flush(): Promise<void> {
    while (this.loop) await this.loop;
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
  }

  private async drain(): Promise<void> {
    while (this.pending && !this.abort.signal.aborted) {
      const content = this.pending;
      this.pending = undefined;
      try {
        await this.write(content);
        this.stats.published++;
        this.backoff.reset();
      } catch (err) {
        if (this.abort.signal.aborted) return;
        this.stats.failures++;
        this.pending ??= content;
        if (err instanceof KubernetesApiError && err.status === 404) this.appliedSpec = '';
        this.log.warn({ err: (err as Error).message, code: (err as KubernetesApiError).code }, 'cannot publish the WeftNode status yet; retrying');
        await sleep(this.backoff.next(), this.abort.signal, 'Publish WeftNode').catch(() => undefined);
      }
    }
  }

  private async write(content: WeftNodeContent): Promise<void> {
    const path = objectPath('WeftNode', this.node.name);
    const query = { fieldManager: FIELD_MANAGER, force: true };
    const signal = this.abort.signal;
    const spec = JSON.stringify(content.spec);
    if (spec !== this.appliedSpec) {
      const metadata: Record<string, unknown> = { name: this.node.name };
      if (this.node.uid) metadata.ownerReferences = [{ apiVersion: 'v1', kind: 'Node', name: this.node.name, uid: this.node.uid }];
      await this.client.request(`apply WeftNode ${this.node.name}`, 'PATCH', path, { query, contentType: APPLY, body: { apiVersion: 'weft.io/v1', kind: 'WeftNode', metadata, spec: content.spec }, signal });
      this.appliedSpec = spec;
    }
    await this.client.request(`apply the status of WeftNode ${this.node.name}`, 'PATCH', `${path}/status`, { query, contentType: APPLY, body: { apiVersion: 'weft.io/v1', kind: 'WeftNode', metadata: { name: this.node.name }, status: content.status }, signal });
  }
}
