/** Leaf types of the kvstore package; imports nothing. */

/** One key as stored in etcd, with the revisions that make compare-and-swap possible. */
export interface KeyValue {
  key: string;
  value: Buffer;
  /** Revision of the transaction that created the key (0 = absent). */
  createRevision: number;
  /** Revision of the last write to the key. */
  modRevision: number;
  /** Lease the key is bound to, '0' when none. */
  lease: string;
}

export interface ListResult {
  items: KeyValue[];
  /** Store revision the list was read at; a watch from revision + 1 misses nothing. */
  revision: number;
}

export type CompareOp = '==' | '!=' | '<' | '>';

/** One term of a transaction's condition; all terms must hold. */
export type Compare =
  | { key: string; target: 'value'; op: CompareOp; value: string | Buffer }
  | { key: string; target: 'mod' | 'create' | 'version'; op: CompareOp; value: number };

/** One operation of a transaction branch. */
export type TxnOp =
  | { type: 'put'; key: string; value: string | Buffer; lease?: string }
  | { type: 'delete'; key: string; prefix?: boolean }
  | { type: 'get'; key: string; prefix?: boolean };

export interface TxnResult {
  succeeded: boolean;
  revision: number;
  /** Results of the `get` operations of the branch that ran, in order (others are empty). */
  gets: KeyValue[][];
}

/** A change seen by a prefix watcher. */
export interface WatchEvent {
  type: 'upsert' | 'delete';
  key: string;
  /** The new value for an upsert; empty for a delete. */
  value: Buffer;
  modRevision: number;
}

export type WatcherState = 'idle' | 'listing' | 'watching' | 'reconnecting' | 'closed';

export type SessionState = 'granting' | 'active' | 'lost' | 'closed';
