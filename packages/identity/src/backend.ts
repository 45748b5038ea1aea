/**
 * The narrow storage interface the allocator needs (the allocator defines it;
 * the etcd backend implements it). Every write is one atomic transaction whose
 * failure branch reads back the two keys that decide what to try next, so a
 * lost race costs no extra round trip.
 */

/** What the store holds for one label set and one candidate id, read at one revision. */
export interface StoreView {
  /** labels -> id index: the id it names (undefined if the value is corrupt), or absent. */
  index?: { id: number | undefined; modRevision: number };
  /** id -> labels master key of the id that was tried. */
  master?: { labels: string; modRevision: number };
}

export type WriteResult = { ok: true } | { ok: false; view: StoreView };

export interface IdentityBackend {
  /** Takes a node reference on an existing identity: requires master == labels and index == id. */
  claim(id: number, labels: string, node: string, lease: string, signal?: AbortSignal): Promise<WriteResult>;
  /** Creates a new identity: requires both the master and the index to be absent. */
  create(id: number, labels: string, node: string, lease: string, signal?: AbortSignal): Promise<WriteResult>;
  /** Recreates a master deleted behind our back: requires index == id and master absent. */
  repairMaster(id: number, labels: string, node: string, lease: string, signal?: AbortSignal): Promise<WriteResult>;
  /** Recreates an index deleted behind our back: requires master == labels and index absent. */
  repairIndex(id: number, labels: string, node: string, lease: string, signal?: AbortSignal): Promise<WriteResult>;
  /** Removes an index entry that points at an id owned by other labels (or is corrupt), if unchanged. */
  dropIndex(labels: string, modRevision: number, signal?: AbortSignal): Promise<boolean>;
  /** Reads the index and the master of `id` at one revision. */
  view(id: number | undefined, labels: string, signal?: AbortSignal): Promise<StoreView>;
  /** Drops this node's reference. */
  release(id: number, node: string, signal?: AbortSignal): Promise<void>;
}
