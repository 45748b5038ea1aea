import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DropReason, DropReasonText } from './reasons.js';

const REPO = join(__dirname, '..', '..', '..');

/** The drop reasons are one registry in three places: the C header, this package and bpf/README.md. */
describe('drop reasons', () => {
  const header = readFileSync(join(REPO, 'bpf', 'lib', 'weft_types.h'), 'utf8');
  const cCodes = new Map([...header.matchAll(/^#define WEFT_DROP_(\w+)\s+(\d+)/gm)].map((m) => [Number(m[2]), m[1]!]));

  it('has the same numbers in weft_types.h and reasons.ts, each with a text and its own name', () => {
    const ts = Object.keys(DropReason).map(Number).sort((a, b) => a - b);
    assert.deepEqual([...cCodes.keys()].sort((a, b) => a - b), ts);
    assert.ok(ts.every((n) => Number.isInteger(n) && n >= 1 && n <= 255), 'a reason fits the event\'s drop_reason byte');
    assert.equal(new Set(Object.values(DropReason)).size, ts.length, 'no name twice');
    for (const n of ts) assert.ok(DropReasonText[n as keyof typeof DropReason], `reason ${n} has a text`);
  });

  it('lists every reason in the table of bpf/README.md with both of its names', () => {
    const readme = readFileSync(join(REPO, 'bpf', 'README.md'), 'utf8');
    for (const [n, cName] of cCodes) {
      const name = DropReason[n as keyof typeof DropReason];
      assert.match(readme, new RegExp(`^\\| ${n} \\| \`${cName}\` \\| \`${name}\` \\|`, 'm'), `bpf/README.md row for reason ${n}`);
    }
  });
});
