/**
 * NamedPortIndex: which port numbers the pods of each identity give each port name, from the
 * endpoint records the node uses (this cluster's and admitted remote ones). An egress rule with a
 * named port (`port: http`) allows, per peer identity, the numbers its pods give that name
 * (Kubernetes resolves the name per destination pod; pods of one identity may differ, so the union
 * of theirs). Counted per record, so a number goes when the last pod giving it does.
 */
import type { NamedPort } from '@weft/policy';

export class NamedPortIndex {
  /** identity -> name -> `protocol/port` -> pods giving it. */
  private readonly byIdentity = new Map<number, Map<string, Map<string, number>>>();
  /** record key -> what it added. */
  private readonly byRecord = new Map<string, { identity: number; ports: readonly NamedPort[] }>();
  /** Told when the numbers of some identity's names changed (policies with named egress ports must be resolved again). */
  onChange: () => void = () => undefined;

  /** The named ports record `key` (e.g. an endpoint's address) gives `identity` now; undefined: none. */
  set(key: string, identity: number | undefined, ports: readonly NamedPort[] | undefined): void {
    const before = this.byRecord.get(key);
    const after = identity === undefined || !ports || ports.length === 0 ? undefined : { identity, ports };
    if (!before && !after) return;
    if (before && after && before.identity === after.identity && samePorts(before.ports, after.ports)) return;
    if (before) this.count(before.identity, before.ports, -1);
    if (after) {
      this.count(after.identity, after.ports, 1);
      this.byRecord.set(key, after);
    } else this.byRecord.delete(key);
    this.onChange();
  }

  /** The numbers pods of `identity` give `name`; identity 0 (any peer): of every pod. */
  lookup(identity: number, name: string): NamedPort[] {
    const out = new Map<string, NamedPort>();
    const add = (names: Map<string, Map<string, number>> | undefined): void => {
      for (const key of names?.get(name)?.keys() ?? []) {
        const [protocol, port] = key.split('/') as [NamedPort['protocol'], string];
        out.set(key, { name, protocol, port: Number(port) });
      }
    };
    if (identity === 0) for (const names of this.byIdentity.values()) add(names);
    else add(this.byIdentity.get(identity));
    return [...out.values()];
  }

  private count(identity: number, ports: readonly NamedPort[], delta: 1 | -1): void {
    let names = this.byIdentity.get(identity);
    if (!names) this.byIdentity.set(identity, (names = new Map()));
    for (const p of ports) {
      let numbers = names.get(p.name);
      if (!numbers) names.set(p.name, (numbers = new Map()));
      const key = `${p.protocol}/${p.port}`;
      const n = (numbers.get(key) ?? 0) + delta;
      if (n > 0) numbers.set(key, n);
      else numbers.delete(key);
      if (numbers.size === 0) names.delete(p.name);
    }
    if (names.size === 0) this.byIdentity.delete(identity);
  }
}

function samePorts(a: readonly NamedPort[], b: readonly NamedPort[]): boolean {
  return a.length === b.length && a.every((p, i) => p.name === b[i]!.name && p.protocol === b[i]!.protocol && p.port === b[i]!.port);
}
