import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CIDR_ID_MAX, CIDR_ID_MIN, CidrIdentities } from './cidr-identities.js';
import { CidrIdentitiesExhaustedError } from './errors.js';

describe('CIDR identities', () => {
  const ids = (c: CidrIdentities): Record<string, number> => Object.fromEntries(c.list().map((v) => [v.cidr, v.id]));

  it('keeps each CIDR\'s number whatever else is added or removed', () => {
    const c = new CidrIdentities();
    assert.equal(c.update(['10.0.0.0/8', '192.168.0.0/16']), true);
    const first = ids(c);
    // A CIDR that sorts before both (it was renumbering every later one).
    assert.equal(c.update(['10.0.0.0/8', '192.168.0.0/16', '1.1.1.1/32']), true);
    assert.equal(ids(c)['10.0.0.0/8'], first['10.0.0.0/8']);
    assert.equal(ids(c)['192.168.0.0/16'], first['192.168.0.0/16']);
    // One removed: the others stay.
    c.update(['192.168.0.0/16', '1.1.1.1/32']);
    assert.equal(ids(c)['192.168.0.0/16'], first['192.168.0.0/16']);
    assert.equal(c.update(['1.1.1.1/32', '192.168.0.0/16']), false, 'the same set in another order is no change');
  });

  it('hands a freed number out last, and wraps around the range', () => {
    const c = new CidrIdentities();
    c.update(['10.0.0.0/8']);
    const freed = ids(c)['10.0.0.0/8'];
    c.update([]);
    c.update(['172.16.0.0/12']);
    assert.notEqual(ids(c)['172.16.0.0/12'], freed);
    assert.equal(Math.min(...c.list().map((v) => v.id)) >= CIDR_ID_MIN && Math.max(...c.list().map((v) => v.id)) <= CIDR_ID_MAX, true);
  });

  it('keeps the numbers across a restart, and a damaged file costs only what it damaged', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-cidr-ids-'));
    try {
      const file = join(dir, 'cidr-identities.json');
      const a = new CidrIdentities(file);
      a.update(['10.0.0.0/8', '192.168.0.0/16']);
      const b = new CidrIdentities(file);
      assert.deepEqual(b.list(), a.list());
      b.update(['10.0.0.0/8', '192.168.0.0/16', '172.16.0.0/12']);
      assert.ok(!a.list().some((v) => v.id === ids(b)['172.16.0.0/12']), 'the cursor was kept: no number of before');
      writeFileSync(file, JSON.stringify({ last: 'x', cidrs: { '10.0.0.0/8': 999999, '192.168.0.0/16': 300 } }));
      assert.deepEqual(new CidrIdentities(file).list(), [{ cidr: '192.168.0.0/16', id: 300 }]);
      writeFileSync(file, '{not json');
      assert.deepEqual(new CidrIdentities(file).list(), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses more CIDRs than it has numbers for, and keeps the ones in force', () => {
    const c = new CidrIdentities();
    c.update(['10.0.0.0/8']);
    const before = c.list();
    const many = Array.from({ length: CIDR_ID_MAX - CIDR_ID_MIN + 2 }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.0/24`);
    assert.throws(() => c.update(many), (err: unknown) => err instanceof CidrIdentitiesExhaustedError && err.code === 'WEFT_ERR_CIDR_IDENTITIES_EXHAUSTED' && /name 65281 CIDRs and a node has 65280/.test(err.message));
    assert.deepEqual(c.list(), before);
  });
});
