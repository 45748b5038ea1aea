// Shared helpers for the end-to-end tests: run the weft CLI as a user does,
// and run commands inside lab pods.
'use strict';
const { execFile, spawn } = require('node:child_process');
const { join } = require('node:path');

const WEFT = join(__dirname, '..', 'packages', 'cli', 'bin', 'weft.js');

/** Runs `weft ARGS...`; resolves {code, stdout, stderr}. */
function weft(args, options = {}) {
  return new Promise((resolve) => {
    execFile(process.execPath, [WEFT, ...args], { timeout: options.timeout ?? 180_000, maxBuffer: 64 << 20, env: { ...process.env, WEFT_LOG_LEVEL: 'warn' } }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

async function weftJson(args, options) {
  const r = await weft([...args, '-o', 'json'], options);
  if (r.code !== 0) throw new Error(`weft ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** `weft probe` from inside a pod: resolves true when the peer answered. */
async function probe(pod, target) {
  const r = await weft(['lab', 'exec', pod, '--', process.execPath, WEFT, 'probe', '--timeout', '1500', ...target]);
  return r.code === 0;
}

async function until(cond, what, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The pid of the process in network namespace `ns` whose command line contains `needle`. */
function pidInNetns(ns, needle) {
  const { execFileSync } = require('node:child_process');
  const { readFileSync } = require('node:fs');
  const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split(/\s+/).filter(Boolean);
  const pid = pids.find((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(needle);
    } catch {
      return false;
    }
  });
  return pid === undefined ? undefined : Number(pid);
}

function isRoot() {
  return process.getuid && process.getuid() === 0;
}

module.exports = { WEFT, weft, weftJson, probe, until, isRoot, pidInNetns, spawn };
