/**
 * "Synced" markers: a writer that exports a set of keys under a prefix (an
 * exporter's full snapshot, say) writes `<root>/synced/<name>` once the whole
 * set is in place. A reader must not treat the prefix as complete, nor prune
 * what it no longer sees, before the marker is there.
 */
import type { CallOptions, KvClient } from './client.js';

export interface SyncedMarker {
  name: string;
  /** Store revision at which the writer declared the set complete. */
  revision: number;
  /** When it did, ISO 8601. */
  at: string;
}

export const SYNCED_ROOT = 'weft/synced/';

export function syncedKey(name: string): string {
  return `${SYNCED_ROOT}${name}`;
}

/** Declares `name` complete; bound to `lease` when given, so a dead writer's marker goes too. */
export async function markSynced(client: KvClient, name: string, options: CallOptions & { lease?: string } = {}): Promise<SyncedMarker> {
  const revision = await client.revision(options);
  const marker: SyncedMarker = { name, revision, at: new Date().toISOString() };
  await client.put(syncedKey(name), JSON.stringify(marker), options);
  return marker;
}

/** The marker for `name`, or undefined when the set has not been declared complete. */
export async function readSynced(client: KvClient, name: string, options: CallOptions = {}): Promise<SyncedMarker | undefined> {
  const kv = await client.get(syncedKey(name), options);
  if (!kv) return undefined;
  try {
    const parsed = JSON.parse(kv.value.toString()) as Partial<SyncedMarker>;
    if (typeof parsed.revision !== 'number' || typeof parsed.at !== 'string') return undefined;
    return { name, revision: parsed.revision, at: parsed.at };
  } catch {
    return undefined;
  }
}

export async function clearSynced(client: KvClient, name: string, options: CallOptions = {}): Promise<void> {
  await client.delete(syncedKey(name), options);
}
