/**
 * Pod IP allocation from the node's pod CIDR. The first address is the
 * node's own gateway address on its pod network, the last is broadcast; the
 * rest go to pods. State is a JSON file written atomically, so an agent
 * restart keeps every pod's address.
 *
 * Addresses are handed out forward, from the one after the last allocated,
 * wrapping at the end of the range: a just-freed address is the last to be
 * reused, so packets of a removed pod's connections (and any state keyed by
 * its address elsewhere) have the whole cycle to die out before another pod
 * answers at that address. The cursor is saved with the owners.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { formatIpv4, parseCidr, parseIpv4, type Cidr } from '@weft/policy';
import { IpamExhaustedError } from './errors.js';

export class Ipam {
  private readonly cidr: Cidr;
  private readonly owners = new Map<number, string>();
  /** The last address handed out (0: none yet); allocation continues after it. */
  private lastAllocated = 0;

  constructor(
    readonly podCidr: string,
    private readonly stateFile: string,
  ) {
    const c = parseCidr(podCidr);
    if (typeof c === 'string') throw new RangeError(c);
    this.cidr = c;
    try {
      const saved = JSON.parse(readFileSync(stateFile, 'utf8')) as SavedIpam | Record<string, string>;
      // The first format was the owners object alone.
      const v2 = typeof saved.owners === 'object' && saved.owners !== null;
      const owners = (v2 ? (saved as SavedIpam).owners : saved) as Record<string, string>;
      for (const [ip, owner] of Object.entries(owners)) {
        const n = parseIpv4(ip);
        if (n !== undefined && this.inRange(n) && typeof owner === 'string') this.owners.set(n, owner);
      }
      const last = v2 ? parseIpv4(String((saved as SavedIpam).last)) : undefined;
      // Without a saved cursor, continue after the highest address in use (never below it).
      this.lastAllocated = last !== undefined && this.inRange(last) ? last : Math.max(0, ...this.owners.keys());
    } catch {
      // No state yet (first start): nothing allocated.
    }
  }

  private get first(): number {
    return this.cidr.addr + 2;
  }
  private get last(): number {
    return this.cidr.addr + 2 ** (32 - this.cidr.bits) - 2;
  }
  private inRange(n: number): boolean {
    return n >= this.first && n <= this.last;
  }

  /** The node's own address on the pod network. */
  get gateway(): string {
    return formatIpv4(this.cidr.addr + 1);
  }

  /** The address held by `owner`, or a new one (the next free one after the last handed out). Idempotent per owner. */
  allocate(owner: string): string {
    for (const [n, o] of this.owners) if (o === owner) return formatIpv4(n);
    const size = this.last - this.first + 1;
    const start = this.lastAllocated >= this.first && this.lastAllocated < this.last ? this.lastAllocated + 1 : this.first;
    for (let i = 0; i < size; i++) {
      const n = this.first + ((start - this.first + i) % size);
      if (!this.owners.has(n)) {
        this.owners.set(n, owner);
        this.lastAllocated = n;
        this.save();
        return formatIpv4(n);
      }
    }
    throw new IpamExhaustedError(this.podCidr, size);
  }

  /** Frees `owner`'s address; returns it, if it had one. */
  release(owner: string): string | undefined {
    for (const [n, o] of this.owners) {
      if (o === owner) {
        this.owners.delete(n);
        this.save();
        return formatIpv4(n);
      }
    }
    return undefined;
  }

  ownerOf(ip: string): string | undefined {
    const n = parseIpv4(ip);
    return n === undefined ? undefined : this.owners.get(n);
  }

  get used(): number {
    return this.owners.size;
  }

  private save(): void {
    mkdirSync(dirname(this.stateFile), { recursive: true });
    const tmp = `${this.stateFile}.tmp`;
    const saved: SavedIpam = { owners: Object.fromEntries([...this.owners].map(([n, o]) => [formatIpv4(n), o])), last: this.lastAllocated ? formatIpv4(this.lastAllocated) : '' };
    writeFileSync(tmp, JSON.stringify(saved, null, 1));
    renameSync(tmp, this.stateFile);
  }
}

/** ipam.json: address -> owner, and the last address handed out. */
interface SavedIpam {
  owners: Record<string, string>;
  last: string;
}
