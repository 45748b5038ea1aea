import assert from 'node:assert/strict';
import { parseCidr, formatCidr, type Cidr } from '@weft/common';
import { CidrSet } from './cidr-set.js';

const c = (text: string): Cidr => parseCidr(text) as Cidr;

describe('CidrSet', () => {
  it('finds an entry containing the query, inside it, or equal to it, and nothing beside it', () => {
    const set = new CidrSet<string>();
    set.add(c('10.99.0.0/16'), 'underlay');
    set.add(c('10.101.1.0/24'), 'pods e1');
    set.add(c('10.96.0.10/32'), 'a service');
    const hit = (q: string): string | undefined => set.overlapping(c(q))?.value;
    assert.equal(hit('10.99.1.11/32'), 'underlay');
    assert.equal(hit('10.0.0.0/8'), 'a service', 'the first entry inside it, by address');
    assert.equal(hit('10.99.0.0/16'), 'underlay');
    assert.equal(hit('10.101.0.0/16'), 'pods e1');
    assert.equal(hit('10.96.0.0/24'), 'a service');
    assert.equal(hit('10.96.0.11/32'), undefined);
    assert.equal(hit('10.100.0.0/16'), undefined);
    assert.equal(hit('10.102.1.0/24'), undefined);
    assert.notEqual(hit('0.0.0.0/0'), undefined);
    assert.equal(formatCidr(set.overlapping(c('10.101.1.128/25'))!.cidr), '10.101.1.0/24');
  });

  it('skips entries the caller does not count, and forgets deleted ones', () => {
    const set = new CidrSet<string>();
    set.add(c('10.102.1.0/24'), 'west/w1');
    set.add(c('10.102.1.0/24'), 'other/x');
    set.add(c('10.102.2.0/24'), 'west/w2');
    assert.equal(set.overlapping(c('10.102.1.0/24'), (v) => v !== 'west/w1')?.value, 'other/x');
    set.delete(c('10.102.1.0/24'), 'other/x');
    assert.equal(set.overlapping(c('10.102.1.0/24'), (v) => v !== 'west/w1'), undefined);
    assert.equal(set.overlapping(c('10.102.0.0/16'), (v) => v !== 'west/w1')?.value, 'west/w2');
    set.delete(c('10.102.2.0/24'), 'west/w2');
    set.delete(c('10.102.1.0/24'), 'west/w1');
    assert.equal(set.size, 0);
    assert.equal(set.overlapping(c('0.0.0.0/0')), undefined);
  });

  it('agrees with a brute-force check on random prefixes', () => {
    let seed = 7;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);
    const randomCidr = (): Cidr => {
      const bits = 8 + rnd(25);
      const m = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
      return { addr: ((0x0a000000 | rnd(1 << 20) << 4) & m) >>> 0, bits };
    };
    const within = (o: Cidr, i: Cidr): boolean => i.bits >= o.bits && ((i.addr & (o.bits === 0 ? 0 : (0xffffffff << (32 - o.bits)) >>> 0)) >>> 0) === o.addr;
    const set = new CidrSet<number>();
    const all: Cidr[] = [];
    for (let i = 0; i < 300; i++) {
      const x = randomCidr();
      all.push(x);
      set.add(x, i);
    }
    for (let i = 0; i < 2000; i++) {
      const q = randomCidr();
      const expected = all.some((x) => within(x, q) || within(q, x));
      const found = set.overlapping(q);
      assert.equal(found !== undefined, expected, formatCidr(q));
      if (found) assert.ok(within(found.cidr, q) || within(q, found.cidr));
    }
  });
});
