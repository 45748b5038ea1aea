// The Weft lab inside the kernel lane: `weft lab up` exactly as a user runs it (one cluster, two
// nodes, etcd, real agents loading the BPF datapath with libbpf, pinning maps in bpffs, tc programs
// on every pod veth and the tunnel device), then pod-to-pod traffic across the two nodes, seen on
// the underlay bridge as tunnel traffic, then `weft lab down` leaving nothing behind.
// This is the base the agent-level lane tests (IPsec, kernel WireGuard, Geneve) stand on; it proves
// the lab itself runs on the lane's kernel (Debian's 6.1) and within its speed (qemu TCG).
//
// WEFT_LANE_LAB_ROUTING picks the routing mode (vxlan by default; direct and geneve work too):
//   hack/kernel-lane/run.sh env WEFT_LANE_LAB_ROUTING=geneve node_modules/.bin/mocha --no-config --exit e2e/kernel/lab.lane.js
'use strict';
const assert = require('node:assert/strict');
const { execFile, execFileSync } = require('node:child_process');
const { existsSync, readdirSync, readFileSync } = require('node:fs');
const { join } = require('node:path');
const { requireLane, capture } = require('./lane.js');

const ROOT = join(__dirname, '..', '..');
const WEFT = join(ROOT, 'packages', 'cli', 'bin', 'weft.js');
const ROUTING = process.env.WEFT_LANE_LAB_ROUTING || 'vxlan';

/** `weft ARGS...`; resolves {code, stdout, stderr, seconds}. Every start of the CLI costs seconds under TCG: call it sparingly. */
function weft(args, timeout = 600_000) {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(process.execPath, [WEFT, ...args], { cwd: ROOT, timeout, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr, seconds: (Date.now() - started) / 1000 }));
  });
}

function labNamespaces() {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]).filter((n) => n.startsWith('weft-'));
}

/** Processes the lab started (etcd, agents, echo servers, pods), by their command line or WEFT_POD. */
function labProcesses() {
  const found = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      const env = readFileSync(`/proc/${pid}/environ`, 'utf8');
      const weftDaemon = cmd.includes(WEFT) && /\0(agent|echo-server|clustermesh-apiserver)\0/.test(cmd);
      if (weftDaemon || cmd.startsWith('etcd\0') || env.split('\0').some((e) => e.startsWith('WEFT_POD='))) {
        found.push(`${pid}: ${cmd.split('\0').join(' ').trim()}`);
      }
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

describe(`the lab in the lane: one cluster of two nodes, ${ROUTING} routing, real agents and BPF datapath`, function () {
  this.timeout(900_000);
  let eps;
  let failed = false;

  before(async function () {
    requireLane();
    failed = true; // until the lab is up and listed
    const up = await weft(['lab', 'up', '--clusters', '1', '--nodes', '2', '--encryption', 'off', '--routing', ROUTING]);
    const steps = up.stderr.split('\n').filter((l) => /^\[lab [\d.]+s\]/.test(l));
    console.log(`      weft lab up: exit ${up.code} after ${up.seconds.toFixed(0)}s (${steps.slice(-1)[0] ?? 'no progress'})`);
    assert.equal(up.code, 0, `weft lab up failed:\n${up.stderr.slice(-4000)}`);
    assert.match(up.stderr, /\[lab [\d.]+s\] ready/);
    const list = await weft(['endpoint', 'list', '-o', 'json']);
    assert.equal(list.code, 0, list.stderr);
    eps = JSON.parse(list.stdout);
    failed = false;
  });

  afterEach(function () {
    if (this.currentTest.state === 'failed') failed = true;
  });

  after(async function () {
    if (process.env.WEFT_KERNEL_LANE !== '1') return;
    // On failure the agents' last words are the most useful thing the guest can report.
    if (failed) {
      for (const n of ['c1-node1', 'c1-node2']) {
        const log = `/var/run/weft/c1/${n}/agent.log`;
        if (existsSync(log)) console.log(`      --- ${log} (tail)\n${readFileSync(log, 'utf8').trim().split('\n').slice(-15).join('\n')}`);
      }
    }
    const down = await weft(['lab', 'down']);
    console.log(`      weft lab down: exit ${down.code} after ${down.seconds.toFixed(0)}s`);
    assert.equal(down.code, 0, down.stderr);
    assert.deepEqual(labNamespaces(), [], 'no lab namespace left');
    assert.deepEqual(labProcesses(), [], 'no lab process left');
    assert.equal(existsSync('/sys/fs/bpf/weft'), false, 'no bpffs pins left');
    assert.equal(existsSync('/var/run/weft'), false, 'no lab state left');
    const links = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' });
    assert.doesNotMatch(links, /weft|lxc/, 'no lab device in the guest\'s own namespace');
  });

  it('runs the demo pods as endpoints with the cluster\'s identities on both nodes', () => {
    const pods = eps.map((e) => `${e.node}:${e.namespace}/${e.pod}`).sort();
    assert.deepEqual(pods, ['c1-node1:demo/client', 'c1-node1:demo/echo-1', 'c1-node2:demo/echo-2']);
    for (const e of eps) assert.equal(e.identity >> 16, 1, 'cluster id 1 in bits 16-23');
    const echo = eps.filter((e) => e.labels.app === 'echo');
    assert.equal(echo[0].identity, echo[1].identity, 'same labels, same identity, on both nodes');
  });

  it('carries ping and a TCP echo from a pod on node 1 to a pod on node 2, over the underlay', async () => {
    const target = eps.find((e) => e.pod === 'echo-2').ip;
    const marker = `weft-lane-lab-${process.pid}-${Date.now()}`;
    // One CLI start for both checks: ping, then a line through echo-2's TCP echo server (port 8080).
    const script = 'ping -c 3 -i 0.3 -W 5 "$1" && exec 3<>"/dev/tcp/$1/8080" && printf "%s\\n" "$2" >&3 && timeout 10 head -n 1 <&3';
    const cap = await capture('weft-lab-ul', 'br0');
    let r;
    let wire;
    try {
      r = await weft(['lab', 'exec', 'c1/demo/client', '--', 'bash', '-c', script, 'lane', target, marker]);
    } finally {
      wire = await cap.stop();
    }
    try {
      assert.equal(r.code, 0, `client -> echo-2 (${target}):\n${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /3 packets transmitted, 3 received/);
      assert.ok(r.stdout.trim().endsWith(marker), `the TCP echo came back: ${r.stdout.slice(-300)}`);
      // Between the nodes the pod packets travel as the routing mode says, and nowhere else.
      const filter = { vxlan: 'udp port 8472', geneve: 'udp port 6081', direct: `host ${target} and not udp` }[ROUTING];
      const n1 = eps.find((e) => e.pod === 'client');
      const seen = await wire.read(filter);
      assert.ok(seen.length >= 6, `pod traffic on the underlay as ${ROUTING} (${filter}): ${seen.length} packets\n${seen.slice(0, 5).join('\n')}`);
      if (ROUTING !== 'direct') assert.deepEqual(await wire.read(`host ${n1.ip} or host ${target}`), [], 'no pod address outside the tunnel');
    } finally {
      wire.remove();
    }
  });
});
