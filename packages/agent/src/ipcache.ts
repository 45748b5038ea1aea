/**
 * Ipcache: who is at which address, as this node's control plane knows it, kept by prefix. Each
 * prefix holds what every source claims for it; the source of highest precedence wins:
 *
 *   local-endpoint    this node's own pods, straight from the endpoint manager (no etcd round trip)
 *   node              this cluster's nodes (their records in the cluster's etcd)
 *   cluster-endpoint  this cluster's pods (their records, after the ownership checks)
 *   policy-cidr       the CIDRs policies name, with their node-local identities
 *   remote-node       remote clusters' nodes that passed admission
 *   remote-endpoint   remote clusters' pods that passed admission
 *
 * so local state always wins over a remote cluster's claim on the same prefix, and a remote claim
 * that loses is reported. Each event changes only its own prefixes; the prefixes whose winner may
 * have changed are collected until the next write (takeChanges), so the datapath is written by
 * difference, whatever the size of the cluster.
 */
import type { IpcacheUpsert } from './datapath-port.js';

export type IpcacheSource = 'local-endpoint' | 'node' | 'cluster-endpoint' | 'policy-cidr' | 'remote-node' | 'remote-endpoint';

/** Highest precedence first. */
export const IPCACHE_SOURCES: readonly IpcacheSource[] = ['local-endpoint', 'node', 'cluster-endpoint', 'policy-cidr', 'remote-node', 'remote-endpoint'];

const RANK = new Map(IPCACHE_SOURCES.map((s, i) => [s, i]));
const REMOTE = new Set<IpcacheSource>(['remote-node', 'remote-endpoint']);

/** A prefix whose winner may have changed: what the datapath should hold for it now (undefined: nothing). */
export interface IpcacheChange {
  cidr: string;
  entry: IpcacheUpsert | undefined;
}

export class Ipcache {
  /** cidr -> source -> what it claims, by precedence when read. */
  private readonly byPrefix = new Map<string, Map<IpcacheSource, IpcacheUpsert>>();
  private readonly bySource = new Map<IpcacheSource, Map<string, IpcacheUpsert>>(IPCACHE_SOURCES.map((s) => [s, new Map()]));
  private readonly dirty = new Set<string>();

  /** What `source` claims for `entry.cidr`; undefined `entry` withdraws its claim on `cidr`. */
  set(source: IpcacheSource, cidr: string, entry: IpcacheUpsert | undefined): void {
    const mine = this.bySource.get(source)!;
    const before = mine.get(cidr);
    if (entry === undefined) {
      if (!before) return;
      mine.delete(cidr);
      const claims = this.byPrefix.get(cidr)!;
      claims.delete(source);
      if (claims.size === 0) this.byPrefix.delete(cidr);
    } else {
      if (entry.cidr !== cidr) throw new RangeError(`Ipcache entry for ${entry.cidr} set under ${cidr}`);
      if (before && sameEntry(before, entry)) return;
      mine.set(cidr, entry);
      let claims = this.byPrefix.get(cidr);
      if (!claims) this.byPrefix.set(cidr, (claims = new Map()));
      claims.set(source, entry);
    }
    this.dirty.add(cidr);
  }

  /** Makes `source` claim exactly `entries`: a diff against what it claimed, so only changed prefixes are touched. */
  replace(source: IpcacheSource, entries: Iterable<IpcacheUpsert>): void {
    const want = new Map<string, IpcacheUpsert>();
    for (const e of entries) want.set(e.cidr, e);
    for (const cidr of [...this.bySource.get(source)!.keys()]) if (!want.has(cidr)) this.set(source, cidr, undefined);
    for (const [cidr, e] of want) this.set(source, cidr, e);
  }

  /** What `source` claims now. */
  claimsOf(source: IpcacheSource): ReadonlyMap<string, IpcacheUpsert> {
    return this.bySource.get(source)!;
  }

  /** The winning entry for `cidr`. */
  get(cidr: string): IpcacheUpsert | undefined {
    return this.winner(cidr)?.[1];
  }

  /** Every prefix's winning entry (a full write: the first one, or after an error). */
  entries(): IpcacheUpsert[] {
    const out: IpcacheUpsert[] = [];
    for (const cidr of this.byPrefix.keys()) out.push(this.winner(cidr)![1]);
    return out;
  }

  /** The prefixes whose winner may have changed since the last call, with what wins now. */
  takeChanges(): IpcacheChange[] {
    const out: IpcacheChange[] = [];
    for (const cidr of this.dirty) out.push({ cidr, entry: this.get(cidr) });
    this.dirty.clear();
    return out;
  }

  /** Marks every prefix changed (the next write goes over all of them again). */
  markAll(): void {
    for (const cidr of this.byPrefix.keys()) this.dirty.add(cidr);
  }

  /** Remote claims that lose to a local source on the same prefix: `cidr` -> why. */
  shadowed(): Map<string, string> {
    const out = new Map<string, string>();
    for (const [cidr, claims] of this.byPrefix) {
      if (claims.size < 2) continue;
      const [winner] = this.winner(cidr)!;
      if (REMOTE.has(winner)) continue;
      for (const s of claims.keys()) if (REMOTE.has(s)) out.set(cidr, `a remote entry for ${cidr} would replace a local one (${winner})`);
    }
    return out;
  }

  get size(): number {
    return this.byPrefix.size;
  }

  private winner(cidr: string): [IpcacheSource, IpcacheUpsert] | undefined {
    const claims = this.byPrefix.get(cidr);
    if (!claims) return undefined;
    let best: [IpcacheSource, IpcacheUpsert] | undefined;
    for (const [s, e] of claims) if (!best || RANK.get(s)! < RANK.get(best[0])!) best = [s, e];
    return best;
  }
}

function sameEntry(a: IpcacheUpsert, b: IpcacheUpsert): boolean {
  return a.identity === b.identity && a.flags === b.flags && a.clusterId === b.clusterId && a.tunnelIp === b.tunnelIp;
}
