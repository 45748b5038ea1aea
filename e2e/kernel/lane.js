// Helpers for the kernel lane's tests (e2e/kernel/*.lane.js), which run inside
// the qemu guest of hack/kernel-lane/run.sh: Debian's stock kernel, with ESP,
// kernel WireGuard and Geneve. The tests build namespaces joined by a "wire"
// namespace whose bridge is where tcpdump sees exactly what travels between
// nodes (capturing on a node's own device would also show what XFRM has
// already decrypted on the way in).
'use strict';
const { spawn } = require('node:child_process');
const { readFileSync, rmSync } = require('node:fs');
const { randomBytes } = require('node:crypto');
const { join } = require('node:path');
const { Ip, netns, run } = require('../../packages/net/dist/index.js');

/** Fails loudly anywhere but in the lane: these tests need its kernel and a throwaway machine. */
function requireLane() {
  if (process.env.WEFT_KERNEL_LANE !== '1') {
    throw new Error('e2e/kernel/*.lane.js run inside the kernel lane only: hack/kernel-lane/run.sh node_modules/.bin/mocha --no-config --exit "e2e/kernel/*.lane.js"');
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Two nodes `a` and `b` on an underlay `${prefix}.0/24` (.1 and .2 on their
 * device ul0), both plugged into bridge br0 of a third namespace `w`.
 */
async function underlay(name, prefix) {
  const tag = randomBytes(2).toString('hex');
  const t = { a: `lane-${name}-a-${tag}`, b: `lane-${name}-b-${tag}`, w: `lane-${name}-w-${tag}`, ipA: `${prefix}.1`, ipB: `${prefix}.2` };
  t.cleanup = async () => {
    for (const ns of [t.a, t.b, t.w]) await netns.delete(ns);
  };
  try {
    for (const ns of [t.w, t.a, t.b]) await netns.add(ns);
    const w = new Ip(t.w);
    await w.addBridge('br0');
    await w.setUp('br0');
    for (const [side, ns, ip] of [['wa', t.a, t.ipA], ['wb', t.b, t.ipB]]) {
      await w.addVeth(side, 'ul0', { peerNetns: ns });
      await w.setMaster(side, 'br0');
      await w.setUp(side);
      const node = new Ip(ns);
      await node.addAddress('ul0', `${ip}/24`);
      await node.setUp('ul0');
    }
  } catch (err) {
    await t.cleanup();
    throw err;
  }
  return t;
}

/** `ip netns exec NS ARGV...`; resolves stdout. */
async function inNs(ns, argv, options = {}) {
  return (await run(['ip', 'netns', 'exec', ns, ...argv], options)).stdout;
}

/** Sends `payload` `count` times as UDP from namespace `ns` (bash's /dev/udp: no extra process per packet). */
async function sendUdp(ns, host, port, payload, count) {
  await inNs(ns, ['bash', '-c', `for i in $(seq ${count}); do printf '%s' "$0" >/dev/udp/${host}/${port}; sleep 0.05; done`, payload]);
}

/** A spawned process in `ns`; `done` resolves {code, signal, stdout, stderr}. */
function spawnInNs(ns, argv) {
  const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
  const done = new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done, output: () => ({ stdout, stderr }) };
}

async function waitFor(cond, what, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** The UDP sink (udp-sink.js) in `ns`; stop() resolves the payloads it received. */
async function udpSink(ns, host, port) {
  const p = spawnInNs(ns, [process.execPath, join(__dirname, 'udp-sink.js'), host, String(port)]);
  await Promise.race([waitFor(() => p.output().stdout.includes('ready\n'), `the UDP sink on ${host}:${port}`), p.done.then((r) => Promise.reject(new Error(`UDP sink exited: ${r.stderr}`)))]);
  return {
    async stop() {
      p.child.kill('SIGTERM');
      const r = await p.done;
      const last = r.stdout.trim().split('\n').pop();
      return JSON.parse(last).payloads;
    },
  };
}

/**
 * tcpdump on `dev` in `ns`, written to a pcap file in the guest's /tmp.
 * Immediate mode and -U, so packets are on disk when it stops.
 */
async function capture(ns, dev) {
  const file = join('/tmp', `lane-${randomBytes(4).toString('hex')}.pcap`);
  const p = spawnInNs(ns, ['tcpdump', '-i', dev, '--immediate-mode', '-U', '-s', '0', '-w', file]);
  await Promise.race([waitFor(() => /listening on/.test(p.output().stderr), 'tcpdump to listen'), p.done.then((r) => Promise.reject(new Error(`tcpdump exited: ${r.stderr}`)))]);
  return {
    async stop() {
      await sleep(200); // the last packets' way through the bridge
      p.child.kill('SIGINT');
      await p.done;
      return {
        bytes: readFileSync(file),
        /** Packet lines of `tcpdump -nn -r FILE FILTER` (with -v when asked). */
        async read(filter, options = {}) {
          const args = ['tcpdump', '-nn', ...(options.verbose ? ['-v'] : []), '-r', file, filter];
          const out = (await run(args)).stdout;
          return out.split('\n').filter((l) => /^\d\d:\d\d:\d\d\./.test(l) || (options.verbose && l.trim() !== ''));
        },
        remove: () => rmSync(file, { force: true }),
      };
    },
  };
}

module.exports = { requireLane, underlay, inNs, sendUdp, spawnInNs, udpSink, capture, sleep, waitFor };
