/**
 * Where identities live in etcd (under a root, default `weft/identities/v1/`):
 *
 *   id/<id>                = <canonical labels>   master key; no lease; what caches watch
 *   labels/<labels>        = <id>                 index; no lease; bumped by every claim
 *   noderefs/<node>/<id>   = <canonical labels>   one per node using the id; bound to the node's lease
 *
 * References sit under a per-node prefix so that etcd RBAC can let a node write its own and no
 * other node's (docs/credentials.md). Before that they were `refs/<id>/<node>`, which no prefix
 * grant can split by node; the garbage collector still counts such legacy references (agents of
 * an older version may hold some during an upgrade: they die with those agents' leases), and
 * nothing writes them any more. Master and index keys stay shared by design: any node may create
 * an identity, so any node can write them (the docs say what that allows).
 *
 * Master and index are created together in one transaction that requires both
 * absent: two label sets can never share an id, one label set can never get two.
 * Every claim rewrites the index, so the garbage collector can delete an
 * unreferenced identity with a compare on the index's mod revision and never
 * race a claim that landed in between.
 */
export const DEFAULT_ROOT = 'weft/identities/v1/';

export class IdentityLayout {
  constructor(readonly root: string = DEFAULT_ROOT) {}

  get mastersPrefix(): string {
    return `${this.root}id/`;
  }
  get indexPrefix(): string {
    return `${this.root}labels/`;
  }
  /** Every node's references. */
  get refsPrefix(): string {
    return `${this.root}noderefs/`;
  }
  /** References as agents before per-node keys wrote them (refs/<id>/<node>); read, never written. */
  get legacyRefsPrefix(): string {
    return `${this.root}refs/`;
  }
  /** The references of one node: the prefix its etcd role may write (the slash keeps node1 from matching node10). */
  nodeRefsPrefix(node: string): string {
    return `${this.root}noderefs/${node}/`;
  }
  master(id: number): string {
    return `${this.root}id/${id}`;
  }
  index(labels: string): string {
    return `${this.root}labels/${labels}`;
  }
  ref(id: number, node: string): string {
    return `${this.nodeRefsPrefix(node)}${id}`;
  }
  /** The id of a master key, or the key's suffix if it is not one (for error reports). */
  masterSuffix(key: string): string {
    return key.slice(this.mastersPrefix.length);
  }
  /** Splits a reference key, `noderefs/<node>/<id>` or legacy `refs/<id>/<node>`, into its parts. */
  parseRef(key: string): { id: string; node: string } | undefined {
    const legacy = key.startsWith(this.legacyRefsPrefix);
    if (!legacy && !key.startsWith(this.refsPrefix)) return undefined;
    const rest = key.slice(legacy ? this.legacyRefsPrefix.length : this.refsPrefix.length);
    const slash = rest.indexOf('/');
    if (slash <= 0 || slash === rest.length - 1) return undefined;
    const [first, second] = [rest.slice(0, slash), rest.slice(slash + 1)];
    return legacy ? { id: first, node: second } : { id: second, node: first };
  }
}
