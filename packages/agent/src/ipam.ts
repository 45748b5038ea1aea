/**
 * Pod IP allocation from the node's pod CIDR. The first address is the
 * node's own gateway address on its pod network, the last is broadcast; the
 * rest go to pods. State is a JSON file written atomically, so an agent
 * restart keeps every pod's address.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { formatIpv4, parseCidr, parseIpv4, type Cidr } from '@weft/policy';
import { IpamExhaustedError } from './errors.js';

export class Ipam {
  private readonly cidr: Cidr;
  private readonly owners = new Map<number, string>();

  constructor(
    readonly podCidr: string,
    private readonly stateFile: string,
  ) {
    const c = parseCidr(podCidr);
    if (typeof c === 'string') throw new RangeError(c);
    this.cidr = c;
    try {
      const saved = JSON.parse(readFileSync(stateFile, 'utf8')) as Record<string, string>;
      for (const [ip, owner] of Object.entries(saved)) {
        const n = parseIpv4(ip);
        if (n !== undefined && this.inRange(n)) this.owners.set(n, owner);
      }
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

  /** The address held by `owner`, or a new one. Idempotent per owner. */
  allocate(owner: string): string {
    for (const [n, o] of this.owners) if (o === owner) return formatIpv4(n);
    for (let n = this.first; n <= this.last; n++) {
      if (!this.owners.has(n)) {
        this.owners.set(n, owner);
        this.save();
        return formatIpv4(n);
      }
    }
    throw new IpamExhaustedError(this.podCidr, this.last - this.first + 1);
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
    writeFileSync(tmp, JSON.stringify(Object.fromEntries([...this.owners].map(([n, o]) => [formatIpv4(n), o])), null, 1));
    renameSync(tmp, this.stateFile);
  }
}
