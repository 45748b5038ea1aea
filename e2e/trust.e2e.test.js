// End to end, as root: who may claim an identity on the wire, in a lab of two clusters without
// encryption (where nothing but Weft's own checks stands between the underlay and the overlay).
// From the lab's world host, a hand-built VXLAN packet whose VNI is the client's identity, aimed at
// a pod whose policy admits exactly that identity: it never arrives, `weft observe` shows the drop
// with its reason, and the real client (across nodes and across clusters) still gets through.
'use strict';
const assert = require('node:assert/strict');
const { mkdtempSync, rmSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { WEFT, weft, weftJson, probe, until, isRoot, sendUdpVia, vxlanPayload } = require('./helpers');

const WORLD_NS = 'weft-lab-world';
const WORLD_IP = '10.99.255.250';

/** One datagram from the world host, bound to its own address; resolves the replies to that socket. */
const fromWorld = (args) => sendUdpVia(['ip', 'netns', 'exec', WORLD_NS], { bind: WORLD_IP, ...args });

describe('trust on the wire: two clusters without encryption (e2e, root)', function () {
  this.timeout(300_000);
  let dir;
  let c1;
  let c2;

  before(async function () {
    if (!isRoot()) return this.skip();
    dir = mkdtempSync(join(tmpdir(), 'weft-trust-'));
    const up = await weft(['lab', 'up', '--clusters', '2', '--nodes', '2', '--encryption', 'off']);
    assert.equal(up.code, 0, up.stderr);
    c1 = await weftJson(['endpoint', 'list', '--cluster', 'c1']);
    c2 = await weftJson(['endpoint', 'list', '--cluster', 'c2']);
    await until(async () => (await weftJson(['status', '--cluster', 'c1'])).every((n) => n.remoteEndpoints >= 3), 'c1 to know the pods of c2', 60_000);
  });

  after(async function () {
    if (!isRoot()) return;
    if (dir) rmSync(dir, { recursive: true, force: true });
    assert.equal((await weft(['lab', 'down'])).code, 0);
  });

  it('holds every node to its cluster: the node table names each remote node with its cluster id', async () => {
    const rows = await weftJson(['bpf', 'nodes', 'list', '--cluster', 'c1', '--node', 'c1-node2']);
    const byAddr = new Map(rows.map((r) => [r.addr, r]));
    const [n1] = await weftJson(['status', '--cluster', 'c1', '--node', 'c1-node1']);
    assert.equal(byAddr.get(n1.nodeIp)?.clusterId, 1, `c1-node1 is a node of cluster 1: ${JSON.stringify(rows)}`);
    for (const n of await weftJson(['status', '--cluster', 'c2'])) assert.equal(byAddr.get(n.nodeIp)?.clusterId, 2, `${n.node} is a node of cluster 2 (from c1's clustermesh configuration)`);
    assert.ok(rows.every((r) => r.flags === 0), 'without encryption every node may send in the clear');
  });

  it('never delivers VXLAN injected from the world host claiming the client\'s identity, reports it, and lets the real client through', async () => {
    const echo = c1.find((e) => e.namespace === 'demo' && e.pod === 'echo-2');
    const client = c1.find((e) => e.namespace === 'demo' && e.pod === 'client');
    assert.notEqual(echo.node, client.node, 'the client reaches echo-2 through the tunnel');
    const [{ nodeIp }] = await weftJson(['status', '--cluster', 'c1', '--node', echo.node]);
    // echo-2 admits the client of c1 and the client of c2 (across the mesh), on UDP 9090, and nothing else.
    const policy = join(dir, 'clients-only.yaml');
    writeFileSync(policy, `apiVersion: weft.io/v1
kind: WeftNetworkPolicy
metadata: { name: clients-only, namespace: demo }
spec:
  endpointSelector: { matchLabels: { app: echo } }
  ingress:
  - fromEndpoints: [ { matchLabels: { app: client } }, { matchLabels: { app: client, weft.io/cluster: c2 } } ]
    toPorts: [ { ports: [ { port: "9090", protocol: UDP } ] } ]
`);
    const applied = await weft(['apply', '-f', policy, '--cluster', 'c1']);
    assert.equal(applied.code, 0, applied.stderr);
    const base = 40000 + Math.floor(Math.random() * 20000);
    try {
      // The policy is in force once the world host's own plain datagram goes unanswered.
      let n = 0;
      await until(async () => (await fromWorld({ bindPort: base + (n++ % 50), to: echo.ip, port: 9090, payload: Buffer.from('plain').toString('hex'), waitMs: 300 })).replies.length === 0, 'the policy to keep the world out', 20_000);
      assert.equal(await probe('c1/demo/client', ['--udp', `${echo.ip}:9090`]), true, 'the client is admitted');

      // The attack: the client's identity in the VNI, an inner packet from the world host's address, so
      // that if the tunnel handed it to echo-2 as the client's, echo-2's answer would come back here.
      const port = base + 100;
      const forged = `weft-trust-${port}`;
      const sent = await fromWorld({ bindPort: port, to: nodeIp, port: 8472, payload: vxlanPayload({ vni: client.identity, src: WORLD_IP, dst: echo.ip, sport: port, dport: 9090, data: Buffer.from(forged) }).toString('hex') });
      assert.deepEqual(sent.replies, [], 'the forged VXLAN packet was delivered to echo-2 and answered');
      const flows = async (verdict) => (await weft(['observe', '--cluster', 'c1', '--node', echo.node, '--verdict', verdict, '--last', '10000', '-o', 'json'])).stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
      let drop;
      await until(async () => {
        drop = (await flows('DROPPED')).find((f) => f.source.port === port);
        return drop !== undefined;
      }, 'the drop to be reported', 10_000);
      assert.equal(drop.dropReason, 'TUNNEL_SOURCE_NOT_NODE', JSON.stringify(drop));
      assert.equal(drop.point, 'from-underlay');
      assert.ok(drop.tunneled && drop.source.ip === WORLD_IP && drop.destination.ip === nodeIp && drop.destination.port === 8472, `reported with the tunnel packet's own addresses: ${JSON.stringify(drop)}`);
      const admitted = (await flows('FORWARDED')).filter((f) => f.source.port === port);
      assert.deepEqual(admitted, [], 'to_container admitted the forged packet');

      // The real thing still passes: the client across nodes, and the client of the other cluster.
      assert.equal(await probe('c1/demo/client', ['--udp', `${echo.ip}:9090`]), true, 'the client of c1, through the tunnel');
      assert.equal(await probe('c2/demo/client', ['--udp', `${echo.ip}:9090`]), true, 'the client of c2, from a node of cluster 2');
    } finally {
      await weft(['delete', '-f', policy, '--cluster', 'c1']);
    }
    assert.ok(c2.length > 0);
  });

  it('never lets a pod claim another identity by sending its own node a VXLAN packet', async () => {
    const echo1 = c1.find((e) => e.namespace === 'demo' && e.pod === 'echo-1');
    const client = c1.find((e) => e.namespace === 'demo' && e.pod === 'client');
    const [{ nodeIp }] = await weftJson(['status', '--cluster', 'c1', '--node', echo1.node]);
    const policy = join(dir, 'clients-only-1.yaml');
    writeFileSync(policy, `apiVersion: weft.io/v1
kind: WeftNetworkPolicy
metadata: { name: clients-only-1, namespace: demo }
spec:
  endpointSelector: { matchLabels: { app: echo } }
  ingress: [ { fromEndpoints: [ { matchLabels: { app: client } } ], toPorts: [ { ports: [ { port: "9090", protocol: UDP } ] } ] } ]
`);
    assert.equal((await weft(['apply', '-f', policy, '--cluster', 'c1'])).code, 0);
    try {
      await until(() => probe('c1/demo/echo-2', ['--udp', `${echo1.ip}:9090`]).then((ok) => !ok), 'the policy to keep echo-2 out of echo-1', 20_000);
      // echo-1 hands its node's tunnel device a packet to itself with the client's identity in the VNI:
      // let through, its own echo server would answer its socket as if the client had asked.
      const port = 40000 + Math.floor(Math.random() * 20000);
      const r = await sendUdpVia([process.execPath, WEFT, 'lab', 'exec', 'c1/demo/echo-1', '--'], { bind: echo1.ip, bindPort: port, to: nodeIp, port: 8472, waitMs: 1000, payload: vxlanPayload({ vni: client.identity, src: echo1.ip, dst: echo1.ip, sport: port, dport: 9090, data: Buffer.from(`weft-trust-self-${port}`) }).toString('hex') });
      assert.deepEqual(r.replies, [], 'the pod got itself admitted as the client');
      let drop;
      await until(async () => {
        drop = (await weft(['observe', '--cluster', 'c1', '--node', echo1.node, '--verdict', 'DROPPED', '--last', '10000', '-o', 'json'])).stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((f) => f.source.port === port);
        return drop !== undefined;
      }, 'the drop to be reported', 10_000);
      assert.deepEqual([drop.dropReason, drop.point, drop.source.identity], ['TUNNEL_SOURCE_NOT_NODE', 'from-overlay', client.identity], JSON.stringify(drop));
    } finally {
      await weft(['delete', '-f', policy, '--cluster', 'c1']);
    }
  });
});
