/**
 * IdentityMirror: the cluster's identities (allocated in the kvstore, which
 * stays their source of truth) published as cluster-scoped WeftIdentity
 * objects, for `kubectl get weftidentities` and tools that read the
 * Kubernetes way. One writer per cluster (the clustermesh-apiserver, which
 * already holds every identity), so agents do not race.
 *
 *   WeftIdentity <id>   metadata.labels weft.io/cluster: <cluster>
 *                       spec.labels: {"k8s:app": "web", ...}   (the label set, "source:key" -> value)
 *
 * Nothing is written before the first complete snapshot (`synced()`). Then
 * the existing objects are listed once: those of this cluster whose
 * identity is gone are deleted, and missing or different ones are applied
 * (server-side apply, field manager `weft-clustermesh`). After that every
 * change is written as it comes. Latest value wins per identity, and failures
 * are retried with backoff. The CRD makes spec immutable (an identity keeps
 * its labels), so an id that now stands for other labels (collected, then
 * reallocated) is deleted and created again; an object the API server still
 * refuses (422) is given up, logged and counted, rather than retried forever.
 */
import { Backoff, sleep, type Logger } from '@weft/common';
import type { KubeClient } from './client.js';
import { KubernetesApiError } from './errors.js';
import { collectionPath, objectPath, type KubeList } from './types.js';

export const CLUSTER_LABEL = 'weft.io/cluster';
const MANAGER = 'weft-clustermesh';

export class IdentityMirror {
  /** id -> labels ("source:key" -> value), the whole identity set as last told. */
  private readonly desired = new Map<string, Record<string, string>>();
  /** ids whose object must be made to match `desired` (applied, or deleted when absent). */
  private readonly dirty = new Set<string>();
  private snapshot = false;
  private pruned = false;
  private loop: Promise<void> | undefined;
  private readonly abort = new AbortController();
  readonly stats = { applied: 0, deleted: 0, failures: 0, refused: 0 };

  constructor(
    private readonly client: KubeClient,
    private readonly cluster: string,
    private readonly log: Logger,
    private readonly backoff = new Backoff({ initialMs: 500, maxMs: 30_000 }),
  ) {}

  /** An identity and its canonical labels (`source:key=value;...`). */
  upsert(id: string, canonical: string): void {
    const labels = labelMap(canonical);
    const prev = this.desired.get(id);
    this.desired.set(id, labels);
    if (!prev || same(prev, labels) === false) this.touch(id);
  }

  delete(id: string): void {
    if (this.desired.delete(id)) this.touch(id);
  }

  /** The snapshot is complete: from now on, objects without an identity may be deleted. */
  synced(): void {
    this.snapshot = true;
    this.kick();
  }

  /** Resolves when nothing is left to write (or stop() was called). */
  async flush(): Promise<void> {
    while (this.loop) await this.loop;
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
  }

  private touch(id: string): void {
    this.dirty.add(id);
    this.kick();
  }

  private kick(): void {
    if (!this.snapshot || this.loop) return;
    this.loop = this.drain().finally(() => {
      this.loop = undefined;
      // A change that arrived as the loop was ending.
      if (!this.abort.signal.aborted && this.dirty.size > 0) this.kick();
    });
  }

  private async drain(): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted && (!this.pruned || this.dirty.size > 0)) {
      try {
        if (!this.pruned) {
          await this.prune();
          this.pruned = true;
        }
        for (const id of [...this.dirty]) {
          if (signal.aborted) return;
          this.dirty.delete(id);
          try {
            await this.write(id);
          } catch (err) {
            this.dirty.add(id);
            throw err;
          }
        }
        this.backoff.reset();
      } catch (err) {
        if (signal.aborted) return;
        this.stats.failures++;
        this.log.warn({ err: (err as Error).message, code: (err as KubernetesApiError).code }, 'cannot mirror identities to WeftIdentity objects yet; retrying');
        await sleep(this.backoff.next(), signal, 'Mirror identities').catch(() => undefined);
      }
    }
  }

  /** Lists this cluster's WeftIdentity objects; marks the stale and the missing ones. */
  private async prune(): Promise<void> {
    const path = collectionPath('WeftIdentity');
    let cont: string | undefined;
    const existing = new Map<string, string>();
    do {
      const page = await this.client.request<KubeList>('list WeftIdentity objects', 'GET', path, { query: { labelSelector: `${CLUSTER_LABEL}=${this.cluster}`, limit: 500, continue: cont }, signal: this.abort.signal });
      for (const o of page.items ?? []) existing.set(o.metadata?.name ?? '', sorted((o.spec as { labels?: Record<string, string> } | undefined)?.labels ?? {}));
      cont = page.metadata?.continue || undefined;
    } while (cont !== undefined);
    const matches = (id: string): boolean => this.desired.has(id) && sorted(this.desired.get(id)!) === existing.get(id);
    for (const id of existing.keys()) if (!matches(id)) this.dirty.add(id);
    for (const id of this.desired.keys()) if (!existing.has(id)) this.dirty.add(id);
    // Already matching objects need no write, even if touched before the snapshot completed.
    for (const id of this.dirty) if (existing.has(id) && matches(id)) this.dirty.delete(id);
  }

  private async write(id: string): Promise<void> {
    const labels = this.desired.get(id);
    if (!labels) return this.remove(id);
    const apply = (): Promise<unknown> => {
      const body = { apiVersion: 'weft.io/v1', kind: 'WeftIdentity', metadata: { name: id, labels: { [CLUSTER_LABEL]: this.cluster } }, spec: { labels } };
      return this.client.request(`apply WeftIdentity ${id}`, 'PATCH', objectPath('WeftIdentity', id), { query: { fieldManager: MANAGER, force: true }, contentType: 'application/apply-patch+yaml', body, signal: this.abort.signal });
    };
    try {
      await apply();
    } catch (err) {
      if (!(err instanceof KubernetesApiError && err.status === 422)) throw err;
      // Most likely the immutable spec of an object left from the id's previous labels: replace it.
      try {
        await this.remove(id);
        await apply();
      } catch (again) {
        if (!(again instanceof KubernetesApiError && again.status === 422)) throw again;
        this.stats.refused++;
        this.log.error({ identity: id, err: again.message, code: again.code }, 'the API server refuses this WeftIdentity; not mirrored');
        return;
      }
    }
    this.stats.applied++;
  }

  private async remove(id: string): Promise<void> {
    try {
      await this.client.request(`delete WeftIdentity ${id}`, 'DELETE', objectPath('WeftIdentity', id), { signal: this.abort.signal });
    } catch (err) {
      if (!(err instanceof KubernetesApiError && err.status === 404)) throw err;
    }
    this.stats.deleted++;
  }
}

/** `k8s:app=web;reserved:host` -> {"k8s:app": "web", "reserved:host": ""}. */
function labelMap(canonical: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of canonical === '' ? [] : canonical.split(';')) {
    const i = l.indexOf('=');
    if (i < 0) out[l] = '';
    else out[l.slice(0, i)] = l.slice(i + 1);
  }
  return out;
}

function sorted(labels: Record<string, string>): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function same(a: Record<string, string>, b: Record<string, string>): boolean {
  return sorted(a) === sorted(b);
}
