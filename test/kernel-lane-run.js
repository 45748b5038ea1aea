// The kernel lane's one boot (docs/kernel-lane.md), started once per mocha run: by the root hook
// (test/mocha-hooks.js) when the run begins, so the lane's minutes under emulation overlap the rest
// of the suite, or by its test (test/kernel-lane.spec.js, last in .mocharc's spec) when that runs
// alone. The VM runs at nice 19: it takes the CPU the other tests leave idle, not theirs.
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const { join, resolve } = require('node:path');

const ROOT = resolve(__dirname, '..');
const RUN = join(ROOT, 'hack', 'kernel-lane', 'run.sh');

function hostNetns() {
  const out = execFileSync('ip', ['-j', 'netns', 'list'], { encoding: 'utf8' }).trim();
  return out ? JSON.parse(out).map((n) => n.name).sort() : [];
}

let running;

/** The lane's run: { code, stderr, seconds, netnsBefore }; started at the first call. */
function kernelLane() {
  running ??= new Promise((res, rej) => {
    const netnsBefore = hostNetns();
    const started = Date.now();
    const argv = ['-n', '19', 'bash', RUN, 'node_modules/.bin/mocha', '--no-config', '--timeout', '180000', '--exit', '--reporter', 'spec', 'e2e/kernel/*.lane.js'];
    // Beside the rest of the suite, at low priority, one boot has taken 25 minutes: room beyond run.sh's default 900 s.
    const env = { ...process.env, WEFT_KERNEL_LANE_TIMEOUT: process.env.WEFT_KERNEL_LANE_TIMEOUT ?? '2400' };
    const child = spawn('nice', argv, { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d) => {
      stderr += d;
      if (process.env.WEFT_KERNEL_LANE_VERBOSE) process.stderr.write(d);
    });
    child.on('error', rej);
    child.on('close', (code) => res({ code, stderr, seconds: Math.round((Date.now() - started) / 1000), netnsBefore }));
    // Mocha's --exit ends the run without waiting for it; a run cut short kills it (run.sh stops its VM).
    process.once('exit', () => child.kill('SIGTERM'));
  });
  return running;
}

module.exports = { kernelLane, hostNetns, ROOT };
