import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readIpsecKeyFile } from './ipsec-node.js';
import { parseNodeRecord } from '@weft/schema';

describe('ipsec configuration', () => {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'weft-ipsec-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  const write = (name: string, text: string, mode = 0o600): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    chmodSync(p, mode);
    return p;
  };
  const key = 'ab'.repeat(32);

  it('reads the mesh key file and refuses bad ones, saying what is wrong', () => {
    const k = readIpsecKeyFile(write('good', JSON.stringify({ keyId: 3, key })));
    assert.equal(k.keyId, 3);
    assert.equal(k.secret.toString('hex'), key);
    for (const [name, text, mode, reason] of [
      ['exposed', JSON.stringify({ keyId: 1, key }), 0o644, /mode 644: it must not be readable by group or others/],
      ['notjson', 'keyId=1', 0o600, /is not JSON/],
      ['shape', JSON.stringify({ id: 1, key }), 0o600, /must be \{"keyId": 1-15/],
      ['short', JSON.stringify({ keyId: 1, key: 'abcd' }), 0o600, /4 hex characters, not 64/],
      ['zeros', JSON.stringify({ keyId: 1, key: '00'.repeat(32) }), 0o600, /all zeros/],
      ['badid', JSON.stringify({ keyId: 16, key }), 0o600, /key id|keyId|16/],
    ] as const) {
      assert.throws(() => readIpsecKeyFile(write(name, text, mode)), (e: Error & { code?: string }) => e.code === 'WEFT_ERR_IPSEC_CONFIG' && reason.test(e.message) && e.message.includes(join(dir, name)), name);
    }
    assert.throws(() => readIpsecKeyFile(join(dir, 'missing')), /does not exist/);
  });

  it('rejects hostile IPsec parts of node records', () => {
    const rec = (ipsec: unknown): Buffer => Buffer.from(JSON.stringify({ name: 'n', cluster: 'c', ip: '10.0.0.1', podCidr: '10.1.0.0/24', routing: 'vxlan', ipsec }));
    assert.equal(typeof parseNodeRecord(rec({ keyIds: [1, 2], sendKeyId: 1 }), 'c'), 'object');
    for (const [bad, reason] of [
      [{ keyIds: [], sendKeyId: 1 }, /keyIds/],
      [{ keyIds: [0], sendKeyId: 0 }, /keyIds/],
      [{ keyIds: [1, 'x'], sendKeyId: 1 }, /keyIds/],
      [{ keyIds: [1], sendKeyId: 2 }, /sendKeyId 2 must be one of its keyIds/],
      ['yes', /keyIds/],
    ] as const) {
      const r = parseNodeRecord(rec(bad), 'c');
      assert.equal(typeof r, 'string', JSON.stringify(bad));
      assert.match(r as string, reason);
    }
  });
});
