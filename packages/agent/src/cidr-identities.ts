/**
 * CidrIdentities: the node-local identities of the CIDRs that policies name (cluster bits 0,
 * numbers 256-65535; the ipcache maps each prefix to one, the policy maps allow or deny it).
 *
 * A CIDR keeps its number for as long as some policy names it, whatever else is added or removed.
 * A new CIDR takes the next free number after the last one handed out, wrapping, so a just-freed
 * number is the last to come back: a conntrack entry, or a policy map not yet rewritten, that
 * names an old CIDR's number is never read as another CIDR's. The numbers and the cursor are saved
 * (when a file is given), so an agent restart keeps them too: the pinned maps already name them.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { CidrIdentityView } from '@weft/policy';
import { CIDR_IDENTITY_MAX, CIDR_IDENTITY_MIN } from '@weft/datapath';
import { CidrIdentitiesExhaustedError } from './errors.js';

/** The datapath's range: weft_policy_cidrs holds all of it (bpf/lib/weft_types.h). */
export const CIDR_ID_MIN = CIDR_IDENTITY_MIN;
export const CIDR_ID_MAX = CIDR_IDENTITY_MAX;

interface Saved {
  last: number;
  cidrs: Record<string, number>;
}

export class CidrIdentities {
  private readonly byCidr = new Map<string, number>();
  private readonly used = new Set<number>();
  private last = CIDR_ID_MIN - 1;
  private view: CidrIdentityView[] = [];

  /** `file`: where the numbers are kept across restarts (none: in memory only). */
  constructor(private readonly file?: string) {
    if (!file) return;
    let saved: Partial<Saved>;
    try {
      saved = JSON.parse(readFileSync(file, 'utf8')) as Partial<Saved>;
    } catch {
      return; // first start
    }
    if (isId(saved.last)) this.last = saved.last;
    for (const [cidr, id] of Object.entries(saved.cidrs ?? {})) {
      if (!isId(id) || this.used.has(id)) continue; // a damaged file loses that CIDR's number, nothing else
      this.byCidr.set(cidr, id);
      this.used.add(id);
    }
    this.view = this.render();
  }

  /**
   * Brings the set to exactly `cidrs`: those kept keep their numbers, those gone free theirs,
   * new ones take the next free. Returns whether any CIDR came or went. Nothing changes if
   * there are not enough numbers for the new ones.
   */
  update(cidrs: Iterable<string>): boolean {
    const want = new Set(cidrs);
    const gone = [...this.byCidr.keys()].filter((c) => !want.has(c));
    const added = [...want].filter((c) => !this.byCidr.has(c)).sort();
    if (gone.length === 0 && added.length === 0) return false;
    const free = CIDR_ID_MAX - CIDR_ID_MIN + 1 - (this.used.size - gone.length);
    if (added.length > free) throw new CidrIdentitiesExhaustedError(want.size, CIDR_ID_MAX - CIDR_ID_MIN + 1);
    for (const c of gone) {
      this.used.delete(this.byCidr.get(c)!);
      this.byCidr.delete(c);
    }
    for (const c of added) {
      const id = this.nextFree();
      this.byCidr.set(c, id);
      this.used.add(id);
    }
    this.view = this.render();
    this.save();
    return true;
  }

  /** The CIDRs and their numbers, by CIDR. */
  list(): CidrIdentityView[] {
    return this.view;
  }

  private nextFree(): number {
    const span = CIDR_ID_MAX - CIDR_ID_MIN + 1;
    for (let i = 1; i <= span; i++) {
      const id = CIDR_ID_MIN + ((this.last - CIDR_ID_MIN + i) % span);
      if (this.used.has(id)) continue;
      this.last = id;
      return id;
    }
    throw new CidrIdentitiesExhaustedError(this.used.size + 1, span); // (update() checked there is room)
  }

  private render(): CidrIdentityView[] {
    return [...this.byCidr].map(([cidr, id]) => ({ id, cidr })).sort((a, b) => (a.cidr < b.cidr ? -1 : a.cidr > b.cidr ? 1 : 0));
  }

  private save(): void {
    if (!this.file) return;
    mkdirSync(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, JSON.stringify({ last: this.last, cidrs: Object.fromEntries(this.byCidr) } satisfies Saved));
    renameSync(tmp, this.file);
  }
}

function isId(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= CIDR_ID_MIN && v <= CIDR_ID_MAX;
}
