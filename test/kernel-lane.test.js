// The kernel lane (docs/kernel-lane.md): one qemu boot of Debian's stock kernel
// runs every e2e/kernel/*.lane.js test (IPsec, kernel WireGuard, Geneve: what
// this machine's kernel lacks) in a single mocha run inside the guest.
// Root only; as root the lane is required, so a lane that cannot boot fails
// here with its reason instead of skipping.
'use strict';
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const { readdirSync, readFileSync } = require('node:fs');
const { join, resolve } = require('node:path');

const ROOT = resolve(__dirname, '..');
const RUN = join(ROOT, 'hack', 'kernel-lane', 'run.sh');

function hostNetns() {
  const out = execFileSync('ip', ['-j', 'netns', 'list'], { encoding: 'utf8' }).trim();
  return out ? JSON.parse(out).map((n) => n.name).sort() : [];
}

/** Processes whose command line is a qemu of this repo's lane. */
function laneQemus() {
  const found = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let cmd;
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    if (cmd.startsWith('qemu-system-x86_64\0') && cmd.includes(`weft.repo=${ROOT} `)) found.push(Number(pid));
  }
  return found;
}

describe('kernel lane (root): IPsec, kernel WireGuard and Geneve in a qemu guest', function () {
  // run.sh kills the VM after WEFT_KERNEL_LANE_TIMEOUT (900 s by default); this is the outer bound.
  this.timeout(30 * 60_000);

  it('boots once and passes every e2e/kernel/*.lane.js test inside', async function () {
    if (!process.getuid || process.getuid() !== 0) return this.skip();
    const netnsBefore = hostNetns();
    const started = Date.now();
    const argv = [RUN, 'node_modules/.bin/mocha', '--no-config', '--timeout', '180000', '--exit', '--reporter', 'spec', 'e2e/kernel/*.lane.js'];
    const { code, stderr } = await new Promise((res, rej) => {
      // Under load one boot has taken 12 minutes (two labs under emulation): more room than run.sh's default 900 s.
      const env = { ...process.env, WEFT_KERNEL_LANE_TIMEOUT: process.env.WEFT_KERNEL_LANE_TIMEOUT ?? '1500' };
      const child = spawn('bash', argv, { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.setEncoding('utf8').on('data', (d) => {
        err += d;
        if (process.env.WEFT_KERNEL_LANE_VERBOSE) process.stderr.write(d);
      });
      child.on('error', rej);
      child.on('close', (c) => res({ code: c, stderr: err }));
    });
    const seconds = ((Date.now() - started) / 1000).toFixed(0);

    // The guest's mocha output: from the lane's "running:" line to its exit marker.
    const lines = stderr.split('\n');
    const from = lines.findIndex((l) => l.includes('[kernel-lane] guest:') && l.includes('running:'));
    const to = lines.findIndex((l) => l.startsWith('WEFT_LANE_EXIT '));
    const guest = from >= 0 ? lines.slice(from + 1, to >= 0 ? to : undefined).filter((l) => !/^\[\s*\d+\.\d+\]/.test(l)) : [];
    const tail = lines.filter((l) => l.startsWith('[kernel-lane]')).join('\n');
    console.log(`      kernel lane: exit ${code} after ${seconds}s wall time\n${guest.map((l) => `      | ${l}`).join('\n')}`);

    assert.deepEqual(laneQemus(), [], 'no qemu of the lane is left running');
    // Only the lane's own names: other work on the machine (a lab) may add or remove namespaces meanwhile.
    assert.deepEqual(hostNetns().filter((n) => n.startsWith('lane-')), netnsBefore.filter((n) => n.startsWith('lane-')), 'the lane left no namespace on the host (its tests create lane-* inside the guest only)');
    assert.notEqual(code, 125, `the kernel lane could not run (hack/kernel-lane/run.sh exit 125):\n${tail}\n${lines.slice(-30).join('\n')}`);
    assert.notEqual(code, 124, `the kernel lane timed out:\n${lines.slice(-30).join('\n')}`);
    assert.equal(code, 0, `tests failed inside the kernel lane (exit ${code}); the guest's output is above`);
    assert.match(guest.join('\n'), /\d+ passing/);
    assert.doesNotMatch(guest.join('\n'), /\d+ failing|\d+ pending/);
  });
});
