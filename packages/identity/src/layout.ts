/**
 * Where identities live in etcd (under a root, default `weft/identities/v1/`):
 *
 *   id/<id>            = <canonical labels>   master key; no lease; what caches watch
 *   labels/<labels>    = <id>                 index; no lease; bumped by every claim
 *   refs/<id>/<node>   = <canonical labels>   one per node using the id; bound to the node's lease
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
  get refsPrefix(): string {
    return `${this.root}refs/`;
  }
  master(id: number): string {
    return `${this.root}id/${id}`;
  }
  index(labels: string): string {
    return `${this.root}labels/${labels}`;
  }
  refs(id: number): string {
    return `${this.root}refs/${id}/`;
  }
  ref(id: number, node: string): string {
    return `${this.root}refs/${id}/${node}`;
  }
  /** The id of a master key, or the key's suffix if it is not one (for error reports). */
  masterSuffix(key: string): string {
    return key.slice(this.mastersPrefix.length);
  }
  /** Splits `refs/<id>/<node>` into its parts. */
  parseRef(key: string): { id: string; node: string } | undefined {
    const rest = key.slice(this.refsPrefix.length);
    const slash = rest.indexOf('/');
    return slash > 0 ? { id: rest.slice(0, slash), node: rest.slice(slash + 1) } : undefined;
  }
}
