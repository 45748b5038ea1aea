// End to end: the README's main job, run as a user runs it, against the real
// etcd it starts. Proves the command line, the JSON output and that racing
// allocators in one cluster agree.
'use strict';
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const { join } = require('node:path');

const WEFT = join(__dirname, '..', 'packages', 'cli', 'dist', 'main.js');

function weft(args) {
  return new Promise((resolve) => {
    execFile(process.execPath, [WEFT, ...args], { timeout: 60_000 }, (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }));
  });
}

describe('weft demo (e2e, real etcd) @etcd', function () {
  this.timeout(90_000);

  it('races allocators on a real etcd and reports agreement as JSON', async () => {
    const { code, stdout, stderr } = await weft(['demo', '--allocators', '6', '-o', 'json']);
    assert.equal(code, 0, stderr);
    const out = JSON.parse(stdout);
    assert.equal(out.summary.ok, true);
    assert.equal(out.summary.allocators, 6);
    assert.equal(out.identities.length, 8);
    assert.equal(out.summary.identitiesInEtcd, 8);
    assert.equal(out.summary.nodeReferences, 48);
    for (const row of out.identities) {
      assert.equal(row.nodesAgree, true);
      assert.equal(row.clusterId, 1);
    }
    assert.match(stderr, /\[1\/4\] starting a real etcd/);
  });

  it('rejects bad arguments with a usage error and exit code 2', async () => {
    const bad = await weft(['demo', '--allocators', 'lots']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Invalid --allocators "lots": use 1-64 \[WEFT_ERR_USAGE\]/);
    const unknown = await weft(['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /Unknown command "frobnicate"/);
  });

  it('reports an unreachable etcd as a typed error', async () => {
    const { code, stderr } = await weft(['identity', 'list', '--etcd', '127.0.0.1:1', '-o', 'json']);
    assert.equal(code, 1);
    assert.match(stderr, /etcd at 127\.0\.0\.1:1/);
  });
});
