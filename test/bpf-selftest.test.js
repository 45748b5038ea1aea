// The datapath's functional checks (hack/bpf-selftest.sh): BPF_PROG_TEST_RUN on the real
// programs with crafted packets and real maps. Needs root; the script cleans up after itself.
'use strict';
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const { join } = require('node:path');

describe('bpf selftest (root)', function () {
  this.timeout(120_000);
  it('passes every check of hack/bpf-selftest.sh', function () {
    if (!process.getuid || process.getuid() !== 0) return this.skip();
    const r = spawnSync('bash', [join(__dirname, '..', 'hack', 'bpf-selftest.sh'), '--no-build'], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout + r.stderr, /\d+ checks, 0 failed/);
  });
});
