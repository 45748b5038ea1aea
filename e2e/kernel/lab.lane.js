// The Weft lab inside the kernel lane: `weft lab up` exactly as a user runs it (one cluster, two
// nodes, etcd, real agents loading the BPF datapath with libbpf, pinning maps in bpffs, tc programs
// on every pod veth and the tunnel device), with the defaults this machine's kernel cannot run:
// WireGuard, which the agent finds in the lane's kernel ('auto': kernel WireGuard for both lanes of
// every node, no wireguard-go), and Geneve routing (the agent's collect-metadata Geneve device, the
// datapath setting the tunnel key). Then pod-to-pod traffic across the two nodes, seen on the
// underlay bridge as WireGuard only (no Geneve and no pod address outside it), a key rotation of
// both nodes under a UDP stream without a lost datagram, and `weft lab down` leaving nothing behind.
// One lab boot for all of it: under qemu TCG the lab and every CLI start cost seconds.
//
// WEFT_LANE_LAB_ROUTING picks another routing mode (geneve by default; vxlan and direct work too):
//   hack/kernel-lane/run.sh env WEFT_LANE_LAB_ROUTING=vxlan node_modules/.bin/mocha --no-config --exit e2e/kernel/lab.lane.js
'use strict';
const assert = require('node:assert/strict');
const { execFile, execFileSync } = require('node:child_process');
const { existsSync, readdirSync, readFileSync } = require('node:fs');
const { join } = require('node:path');
const { requireLane, capture } = require('./lane.js');

const ROOT = join(__dirname, '..', '..');
const WEFT = join(ROOT, 'packages', 'cli', 'bin', 'weft.js');
const ROUTING = process.env.WEFT_LANE_LAB_ROUTING || 'geneve';
const NODES = ['c1-node1', 'c1-node2'];
/** Lane 0's and lane 1's UDP ports (the lab's wireguardPort and the next). */
const WG_PORTS = 'udp portrange 51871-51872';
/** The tunnel's own UDP port: never on the underlay outside WireGuard. */
const TUNNEL_PORT = { vxlan: 8472, geneve: 6081 }[ROUTING];

/** `weft ARGS...`; resolves {code, stdout, stderr, seconds}. Every start of the CLI costs seconds under TCG: call it sparingly. */
function weft(args, timeout = 600_000) {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(process.execPath, [WEFT, ...args], { cwd: ROOT, timeout, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr, seconds: (Date.now() - started) / 1000 }));
  });
}

/** The agents' API, straight from this process (no CLI start): for checks the test makes, not the user. */
function agent(node) {
  const { AgentClient } = require('../../packages/agent/dist/index.js');
  return new AgentClient(`/var/run/weft/c1/${node}/agent.sock`);
}

function labNamespaces() {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]).filter((n) => n.startsWith('weft-'));
}

/** Processes the lab started (etcd, agents, echo servers, pods, wireguard-go), by their command line or WEFT_POD. */
function labProcesses() {
  const found = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      const env = readFileSync(`/proc/${pid}/environ`, 'utf8');
      const weftDaemon = cmd.includes(WEFT) && /\0(agent|echo-server|clustermesh-apiserver)\0/.test(cmd);
      if (weftDaemon || cmd.startsWith('etcd\0') || /(^|\/)wireguard-go\0/.test(cmd) || env.split('\0').some((e) => e.startsWith('WEFT_POD='))) {
        found.push(`${pid}: ${cmd.split('\0').join(' ').trim()}`);
      }
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** UDP datagrams dropped in a namespace for a full receive buffer (/proc/net/snmp RcvbufErrors). */
describe(`the lab in the lane: one cluster of two nodes, kernel WireGuard, ${ROUTING} routing, real agents and BPF datapath`, function () {
  this.timeout(900_000);
  let eps;
  let statusBefore;
  let failed = false;

  before(async function () {
    requireLane();
    failed = true; // until the lab is up and listed
    const up = await weft(['lab', 'up', '--clusters', '1', '--nodes', '2', '--routing', ROUTING]);
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
      for (const n of NODES) {
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
    // The WireGuard devices lived in the node namespaces and went with them; none here either.
    const links = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' });
    assert.doesNotMatch(links, /weft|lxc/, 'no lab device in the guest\'s own namespace');
    assert.equal(execFileSync('wg', ['show', 'interfaces'], { encoding: 'utf8' }).trim(), '', 'no WireGuard device in the guest\'s own namespace');
  });

  it('runs the demo pods as endpoints with the cluster\'s identities on both nodes', () => {
    const pods = eps.map((e) => `${e.node}:${e.namespace}/${e.pod}`).sort();
    assert.deepEqual(pods, ['c1-node1:demo/client', 'c1-node1:demo/echo-1', 'c1-node2:demo/echo-2']);
    for (const e of eps) assert.equal(e.identity >> 16, 1, 'cluster id 1 in bits 16-23');
    const echo = eps.filter((e) => e.labels.app === 'echo');
    assert.equal(echo[0].identity, echo[1].identity, 'same labels, same identity, on both nodes');
  });

  it('runs both WireGuard lanes of both nodes in the kernel (no wireguard-go), with a session to the peer', async () => {
    const r = await weft(['encrypt', 'status', '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    statusBefore = JSON.parse(r.stdout);
    assert.deepEqual(statusBefore.map((s) => s.node), NODES);
    for (const s of statusBefore) {
      assert.equal(s.mode, 'wireguard', `${s.node}: WireGuard by default`);
      assert.deepEqual(s.lanes.map((l) => `${l.device}:${l.implementation}`), [0, 1].map((i) => `${s.lanes[0].device}${i ? 'b' : ''}:kernel`), `${s.node}: both lanes are kernel WireGuard`);
      assert.equal(s.peers.length, 1);
      assert.ok(s.peers[0].encrypted && s.peers[0].lastHandshake, `${s.node}: its peer is encrypted, with a handshake: ${JSON.stringify(s.peers[0])}`);
      // What the kernel says, not only what the agent reports.
      for (const l of s.lanes) {
        const [link] = JSON.parse(execFileSync('ip', ['-n', `weft-${s.node}`, '-d', '-j', 'link', 'show', 'dev', l.device], { encoding: 'utf8' }));
        assert.equal(link.linkinfo.info_kind, 'wireguard', `${s.node}: ${l.device} is a kernel WireGuard device`);
      }
    }
    assert.deepEqual(labProcesses().filter((p) => /wireguard-go/.test(p)), [], 'no wireguard-go runs');
  });

  it('carries ping and a TCP echo from a pod on node 1 to a pod on node 2, as WireGuard only on the underlay', async () => {
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
      // Between the nodes the pod packets travel in WireGuard, and nowhere else.
      const n1 = eps.find((e) => e.pod === 'client');
      const seen = await wire.read(WG_PORTS);
      assert.ok(seen.length >= 6, `pod traffic on the underlay as WireGuard (${WG_PORTS}): ${seen.length} packets\n${seen.slice(0, 5).join('\n')}`);
      if (TUNNEL_PORT) assert.deepEqual(await wire.read(`udp port ${TUNNEL_PORT}`), [], `no ${ROUTING} outside WireGuard`);
      assert.deepEqual(await wire.read(`host ${n1.ip} or host ${target}`), [], 'no pod address outside WireGuard');
      assert.equal(wire.bytes.indexOf(Buffer.from(marker)), -1, 'the marker never crossed the underlay in the clear');
    } finally {
      wire.remove();
    }
  });

  it('refuses tunnel packets no node sent: from a pod to its own node, and from the underlay', async () => {
    if (!TUNNEL_PORT) return; // direct routing: no tunnel
    const { sendUdpVia, fromUnderlay, vxlanPayload, genevePayload } = require('../helpers.js');
    const payload = ROUTING === 'geneve' ? genevePayload : vxlanPayload;
    const client = eps.find((e) => e.pod === 'client');
    const echo1 = eps.find((e) => e.pod === 'echo-1');
    const [n1, n2] = ['10.99.1.11', '10.99.1.12']; // the lab's node IPs (client and echo-1 on node 1)
    const port = 40000 + Math.floor(Math.random() * 20000);
    // (a) The client pod sends its own node a tunnel packet (delivered locally, never on the underlay):
    // from_overlay alone stands in the way. Let through, echo-1 would answer the client's socket.
    const forged = (p) => payload({ vni: echo1.identity, src: client.ip, dst: echo1.ip, sport: p, dport: 9090, data: Buffer.from(`weft-lane-${p}`) }).toString('hex');
    const a = await sendUdpVia([process.execPath, WEFT, 'lab', 'exec', 'c1/demo/client', '--'], { bind: client.ip, bindPort: port, to: n1, port: TUNNEL_PORT, waitMs: 1000, payload: forged(port) });
    assert.deepEqual(a.replies, [], `a ${ROUTING} packet from a pod to its node was delivered and answered`);
    // (b) From the underlay namespace, an address that is no node.
    execFileSync('ip', ['netns', 'exec', 'weft-lab-ul', 'ip', 'addr', 'add', '10.99.255.77/16', 'dev', 'br0']);
    try {
      await fromUnderlay({ bind: '10.99.255.77', bindPort: port + 1, to: n2, port: TUNNEL_PORT, waitMs: 300, payload: forged(port + 1) });
    } finally {
      execFileSync('ip', ['netns', 'exec', 'weft-lab-ul', 'ip', 'addr', 'del', '10.99.255.77/16', 'dev', 'br0']);
    }
    const flows = async (node) => (await weft(['observe', '--node', node, '--last', '10000', '-o', 'json'])).stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    // (The client's own datagram to its node is a flow too: from-endpoint, forwarded.)
    const fa = (await flows('c1-node1')).filter((f) => f.source.port === port && f.point !== 'from-endpoint');
    assert.ok(fa.length > 0 && fa.every((f) => f.verdict === 'DROPPED' && f.dropReason === 'TUNNEL_SOURCE_NOT_NODE' && f.point === 'from-overlay'), `(a): ${JSON.stringify(fa)}`);
    const fb = (await flows('c1-node2')).filter((f) => f.source.port === port + 1);
    assert.ok(fb.length > 0 && fb.every((f) => f.verdict === 'DROPPED' && f.dropReason === 'TUNNEL_SOURCE_NOT_NODE' && f.point === 'from-underlay'), `(b): ${JSON.stringify(fb)}`);
  });

  it('rotates both nodes\' keys under a UDP stream without losing a datagram', async () => {
    const { podNetnsName } = require('../../packages/lab/dist/index.js');
    const { udpStreamDuring } = require('../udp-stream.js');
    // 500 datagrams/s from the client on node 1 to echo-2 on node 2 while both nodes rotate. Loss
    // is attributed: a datagram the kernel drops on a full queue (iperf3's socket in the pod;
    // kernel WireGuard decrypts without one) is a CPU-starved receiver under emulation, not key
    // handling (e2e/udp-stream.js); every other loss fails the test.
    const s = await udpStreamDuring({
      from: podNetnsName('c1', 'demo', 'client'),
      to: podNetnsName('c1', 'demo', 'echo-2'),
      ip: eps.find((e) => e.pod === 'echo-2').ip,
      datagramsPerSecond: 500,
      path: ['weft-c1-node2', podNetnsName('c1', 'demo', 'echo-2')],
      during: async () => {
        const r = await weft(['encrypt', 'rotate', '--timeout', '120', '-o', 'json']);
        assert.equal(r.code, 0, r.stderr);
        return JSON.parse(r.stdout);
      },
    });
    const rows = s.result;
    assert.deepEqual(rows.map((x) => `${x.node}:${x.outcome}`), NODES.map((n) => `${n}:done`));
    console.log(`      rotations: ${rows.map((x) => `${x.node} lane ${x.lane} in ${(x.durationMs / 1000).toFixed(1)}s`).join(', ')}; stream: ${s.packets} datagrams in ${s.seconds.toFixed(0)}s, ${s.lost} lost${s.lost ? ` (${s.overflowed} to full queues)` : ''}`);
    assert.ok(s.ranThrough && s.packets > 400 * s.seconds, `the stream ran all along (${s.packets} datagrams in ${s.seconds.toFixed(0)} s at 500/s)`);
    assert.ok(s.lost <= s.overflowed, `datagrams lost during the rotations: ${s.lost} of ${s.packets}, only ${s.overflowed} of them to full queues`);

    // Every node replaced one static key; its peer holds the new one, and the rotated lane has a
    // session under it (handshake times are whole seconds with the kernel: compared as such).
    const after = await Promise.all(NODES.map(async (n) => ({ node: n, ...(await agent(n).call('GET', '/v1/encryption')) })));
    for (const n of after) {
      const before = statusBefore.find((s) => s.node === n.node);
      const changed = n.lanes.filter((l, i) => l.publicKey !== before.lanes[i].publicKey);
      assert.equal(changed.length, 1, `${n.node}: one static key replaced`);
      assert.equal(n.lastRotation.outcome, 'done');
      const other = after.find((o) => o.node !== n.node);
      assert.deepEqual(other.peers[0].lanes.map((l) => l.publicKey), n.lanes.map((l) => l.publicKey), `${other.node} holds ${n.node}'s keys`);
      const lane = changed[0].lane;
      const hs = n.peers[0].lanes[lane].lastHandshake;
      assert.ok(hs && Date.parse(hs) >= Math.floor(Date.parse(changed[0].keyCreated) / 1000) * 1000, `${n.node}: a session on lane ${lane} under the new key (handshake ${hs}, key ${changed[0].keyCreated})`);
    }
  });
});
