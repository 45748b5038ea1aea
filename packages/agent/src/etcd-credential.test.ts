import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCa, issue } from '@weft/kvstore';
import { credentialFresh } from './etcd-credential.js';

describe('agent: when its etcd credential must be asked for again', () => {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'weft-cred-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps a certificate of this node from the CA it trusts, and asks again for one of a reinstalled release\'s old CA', async () => {
    const old = await createCa('weft-etcd-ca');
    const reinstalled = await createCa('weft-etcd-ca');
    const cert = await issue(old, 'node-a', { days: 30 });
    const file = (name: string, text: string): string => {
      writeFileSync(join(dir, name), text);
      return join(dir, name);
    };
    const certFile = file('node.crt', cert.cert);
    assert.equal(credentialFresh(certFile, file('old.crt', old.cert), 'node-a'), true);
    // Same subject, same name of CA, another key: the node's state directory outlived the release.
    assert.equal(credentialFresh(certFile, file('new.crt', reinstalled.cert), 'node-a'), false);
    assert.equal(credentialFresh(certFile, join(dir, 'old.crt'), 'node-b'), false, 'another node\'s');
    assert.equal(credentialFresh(certFile, join(dir, 'old.crt'), 'node-a', Date.now() + 25 * 86_400_000), false, 'past two thirds of its life');
    assert.equal(credentialFresh(join(dir, 'missing.crt'), join(dir, 'old.crt'), 'node-a'), false);
  });
});
