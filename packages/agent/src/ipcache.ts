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
/** Sources whose claims are also kept by source (replaced whole, or asked about); the large ones are not, to save memory. */
const BY_SOURCE = new Set<IpcacheSource>(['local-endpoint', 'node', 'policy-cidr', 'remote-node']);

/** One source's claim on a prefix. */
interface Claim {
  source: IpcacheSource;
  entry: IpcacheUpsert;
}

/** A prefix whose winner may have changed: what the datapath should hold for it now (undefined: nothing). */
export interface IpcacheChange {
  cidr: string;
  entry: IpcacheUpsert | undefined;
}

export class Ipcache {
  /** cidr -> the claims on it, highest precedence first (almost always one: an array, not a map, per prefix). */
  private readonly byPrefix = new Map<string, Claim[]>();
  private readonly bySource = new Map<IpcacheSource, Map<string, IpcacheUpsert>>([...BY_SOURCE].map((s) => [s, new Map()]));
  private readonly dirty = new Set<string>();

  /** What `source` claims for `entry.cidr`; undefined `entry` withdraws its claim on `cidr`. */
  set(source: IpcacheSource, cidr: string, entry: IpcacheUpsert | undefined): void {
    if (entry !== undefined && entry.cidr !== cidr) throw new RangeError(`Ipcache entry for ${entry.cidr} set under ${cidr}`);
    const claims = this.byPrefix.get(cidr);
    const at = claims ? claims.findIndex((c) => c.source === source) : -1;
    if (entry === undefined) {
      if (at < 0) return;
      claims!.splice(at, 1);
      if (claims!.length === 0) this.byPrefix.delete(cidr);
      this.bySource.get(source)?.delete(cidr);
    } else {
      if (at >= 0 && sameEntry(claims![at]!.entry, entry)) return;
      if (at >= 0) claims![at]!.entry = entry;
      else if (!claims) this.byPrefix.set(cidr, [{ source, entry }]);
      else {
        claims.push({ source, entry });
        claims.sort((a, b) => RANK.get(a.source)! - RANK.get(b.source)!);
      }
      this.bySource.get(source)?.set(cidr, entry);
    }
    this.dirty.add(cidr);
  }

  /** Makes `source` claim exactly `entries`: a diff against what it claimed, so only changed prefixes are touched. */
  replace(source: IpcacheSource, entries: Iterable<IpcacheUpsert>): void {
    const want = new Map<string, IpcacheUpsert>();
    for (const e of entries) want.set(e.cidr, e);
    for (const cidr of [...this.claimsOf(source).keys()]) if (!want.has(cidr)) this.set(source, cidr, undefined);
    for (const [cidr, e] of want) this.set(source, cidr, e);
  }

  /** What `source` claims now (for the endpoint sources, which are not kept by source: a walk). */
  claimsOf(source: IpcacheSource): ReadonlyMap<string, IpcacheUpsert> {
    const kept = this.bySource.get(source);
    if (kept) return kept;
    const out = new Map<string, IpcacheUpsert>();
    for (const [cidr, claims] of this.byPrefix) for (const c of claims) if (c.source === source) out.set(cidr, c.entry);
    return out;
  }

  /** The winning entry for `cidr`. */
  get(cidr: string): IpcacheUpsert | undefined {
    return this.byPrefix.get(cidr)?.[0]?.entry;
  }

  /** Every prefix's winning entry (a full write: the first one, or after an error). */
  entries(): IpcacheUpsert[] {
    const out: IpcacheUpsert[] = [];
    for (const claims of this.byPrefix.values()) out.push(claims[0]!.entry);
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
      if (claims.length < 2 || REMOTE.has(claims[0]!.source)) continue;
      if (claims.some((c) => REMOTE.has(c.source))) out.set(cidr, `a remote entry for ${cidr} would replace a local one (${claims[0]!.source})`);
    }
    return out;
  }

  get size(): number {
    return this.byPrefix.size;
  }
}

function sameEntry(a: IpcacheUpsert, b: IpcacheUpsert): boolean {
  return a.identity === b.identity && a.flags === b.flags && a.clusterId === b.clusterId && a.tunnelIp === b.tunnelIp;
}
