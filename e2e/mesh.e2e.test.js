// End to end, as root: two lab clusters connected by their clustermesh-apiservers over mTLS.
// Real packets cross clusters through VXLAN; policy selects pods of another cluster by the
// weft.io/cluster label; hostile records from a remote are rejected, counted and never written.
'use strict';
const assert = require('node:assert/strict');
const { mkdtempSync, rmSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { spawn } = require('node:child_process');
const { WEFT, weft, weftJson, probe, until, isRoot, pidInNetns } = require('./helpers');

/** The pid of the clustermesh-apiserver in a cluster's control-plane namespace. */
const apiserverPid = (cluster) => pidInNetns(`weft-${cluster}-cp`, 'clustermesh-apiserver');

describe('clustermesh: two clusters of two nodes (e2e, root)', function () {
  this.timeout(240_000);
  let dir;
  let c1;
  let c2;
  const file = (name, text) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const ip = (eps, pod) => eps.find((e) => `${e.namespace}/${e.pod}` === pod).ip;

  before(async function () {
    if (!isRoot()) return this.skip();
    dir = mkdtempSync(join(tmpdir(), 'weft-mesh-'));
    const up = await weft(['lab', 'up', '--clusters', '2', '--nodes', '2']);
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stderr, /clustermesh: c1 synced with c2/);
    c1 = await weftJson(['endpoint', 'list', '--cluster', 'c1']);
    c2 = await weftJson(['endpoint', 'list', '--cluster', 'c2']);
  });

  after(async function () {
    if (!isRoot()) return;
    assert.equal((await weft(['lab', 'down'])).code, 0);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('syncs both ways, and identities never collide across clusters', async () => {
    for (const e of c1) assert.equal(e.identity >> 16, 1);
    for (const e of c2) assert.equal(e.identity >> 16, 2);
    for (const [local, remote] of [['c1', 'c2'], ['c2', 'c1']]) {
      // The demo pods were started after the link synced: their records follow as changes.
      await until(async () => {
        const r = (await weftJson(['clustermesh', 'status', '--cluster', local])).remotes.find((x) => x.name === remote);
        return r.counts.endpoints >= 3 && r.counts.identities >= 2;
      }, `${local} to import ${remote}'s demo pods`);
      const r = (await weftJson(['clustermesh', 'status', '--cluster', local])).remotes.find((x) => x.name === remote);
      assert.equal(r.state, 'synced');
      assert.deepEqual(r.synced, { identities: true, nodes: true, endpoints: true, services: true });
      assert.equal(r.counts.nodes, 2);
    }
    await until(async () => (await weftJson(['status', '--cluster', 'c1'])).every((n) => n.remoteEndpoints >= 3), 'every node to know the remote pods');
  });

  it('carries pod-to-pod traffic across clusters in both directions', async () => {
    assert.equal(await probe('c1/demo/client', ['--http', `http://${ip(c2, 'demo/echo-2')}:8081/`]), true);
    assert.equal(await probe('c2/demo/client', ['--http', `http://${ip(c1, 'demo/echo-1')}:8081/`]), true);
    assert.equal(await probe('c1/demo/client', ['--udp', `${ip(c2, 'demo/echo-1')}:9090`]), true);
  });

  it("shows both clusters' flows through one relay, live and merged by time", async () => {
    // Follow through c1's relay (its nodes, and c2's through c2's clustermesh-apiserver and relay).
    const follow = spawn(process.execPath, [WEFT, 'observe', '--follow', '--cluster', 'c1', '--from-pod', 'demo/client', '--to-port', '8081', '-o', 'json']);
    let out = '';
    follow.stdout.on('data', (d) => (out += d));
    try {
      const flows = () => out.split('\n').filter(Boolean).map((l) => JSON.parse(l));
      const nodes = await weftJson(['observe', 'nodes', '--cluster', 'c1']);
      assert.deepEqual(nodes.map((n) => `${n.cluster}/${n.name}:${n.state}`), ['c1/c1-node1:NODE_CONNECTED', 'c1/c1-node2:NODE_CONNECTED', 'c2/c2-node1:NODE_CONNECTED', 'c2/c2-node2:NODE_CONNECTED']);
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(await probe('c2/demo/client', ['--http', `http://${ip(c1, 'demo/echo-1')}:8081/`]), true);
      // The connection's first packet leaves a c2 node and arrives at a c1 node: two flows, two clusters, in order.
      await until(() => flows().some((f) => f.cluster === 'c1' && f.point === 'to-endpoint') && flows().some((f) => f.cluster === 'c2' && f.point === 'from-endpoint'), 'both sides of the connection in the relay', 10_000);
      const got = flows();
      const sent = got.find((f) => f.cluster === 'c2' && f.point === 'from-endpoint');
      const received = got.find((f) => f.cluster === 'c1' && f.point === 'to-endpoint' && f.source.port === sent.source.port);
      assert.ok(received, JSON.stringify(got));
      assert.equal(sent.source.cluster, 'c2');
      assert.equal(received.destination.cluster, 'c1');
      // Merged by time: what the relay streams never goes back in time. A node's events are in ring
      // buffer order with their times taken just after, on whichever CPU: they may cross by
      // microseconds, never by a merge window (200 ms).
      const ns = (t) => BigInt(Date.parse(`${t.slice(0, 19)}Z`)) * 1_000_000n + BigInt(((t.split('.')[1] ?? '').replace('Z', '') || '0').padEnd(9, '0'));
      const times = got.map((f) => ns(f.time));
      assert.ok(times.every((t, i) => i === 0 || times[i - 1] <= t + 1_000_000n), `in time order: ${got.map((f) => `${f.cluster}/${f.node} ${f.time}`).join(', ')}`);
      const status = await weftJson(['observe', 'status', '--cluster', 'c1']);
      assert.equal(status.numConnectedNodes, 4);
      assert.deepEqual(status.unavailableNodes, []);
    } finally {
      follow.kill('SIGINT');
    }
  });

  it('passes the connectivity test, with its cross-cluster and global-service cases', async () => {
    const r = await weftJson(['connectivity', 'test'], { timeout: 240_000 });
    assert.equal(r.failed, 0, JSON.stringify(r.results.filter((x) => !x.ok)));
    for (const name of [/across clusters .* allowed by cluster label/, /across clusters .* denied by policy/, /global service answered from both clusters/, /ClusterIP service/]) {
      assert.ok(r.results.some((x) => name.test(x.name) && x.ok), `case ${name} ran and passed`);
    }
  });

  it('lets policy select pods of another cluster only through weft.io/cluster', async () => {
    const echo = ip(c2, 'demo/echo-2');
    const fromC1 = file('from-c1.yaml', `apiVersion: weft.io/v1
kind: WeftNetworkPolicy
metadata: { name: clients, namespace: demo }
spec:
  endpointSelector: { matchLabels: { app: echo } }
  ingress: [ { fromEndpoints: [ { matchLabels: { app: client, weft.io/cluster: c1 } } ] } ]
`);
    assert.equal((await weft(['apply', '-f', fromC1, '--cluster', 'c2'])).code, 0);
    await until(async () => !(await probe('c2/demo/client', ['--http', `http://${echo}:8081/`])), "c2's own client to be denied");
    assert.equal(await probe('c1/demo/client', ['--http', `http://${echo}:8081/`]), true, 'the c1 client is allowed');
    const local = file('local.yaml', `apiVersion: weft.io/v1
kind: WeftNetworkPolicy
metadata: { name: clients, namespace: demo }
spec:
  endpointSelector: { matchLabels: { app: echo } }
  ingress: [ { fromEndpoints: [ { matchLabels: { app: client } } ] } ]
`);
    assert.equal((await weft(['apply', '-f', local, '--cluster', 'c2'])).code, 0);
    await until(async () => !(await probe('c1/demo/client', ['--http', `http://${echo}:8081/`])), 'a selector without the cluster label to exclude c1');
    assert.equal(await probe('c2/demo/client', ['--http', `http://${echo}:8081/`]), true);
    assert.equal((await weft(['delete', '-f', local, '--cluster', 'c2'])).code, 0);
  });

  it("keeps a remote's last state through a partition and heals when it returns", async () => {
    const echo = ip(c2, 'demo/echo-2');
    process.kill(apiserverPid('c2'), 'SIGKILL');
    await until(async () => (await weftJson(['clustermesh', 'status', '--cluster', 'c1'])).remotes[0].state === 'disconnected', 'c1 to see c2 gone');
    assert.equal(await probe('c1/demo/client', ['--http', `http://${echo}:8081/`]), true, 'traffic to c2 keeps flowing on the last known state');
    assert.ok((await weftJson(['status', '--cluster', 'c1']))[0].remoteEndpoints >= 3, 'nothing was pruned');
    const child = spawn('ip', ['netns', 'exec', 'weft-c2-cp', process.execPath, WEFT, 'clustermesh-apiserver', '--config', '/var/run/weft/lab/c2/clustermesh/config.json'], { detached: true, stdio: 'ignore' });
    child.unref();
    await until(async () => (await weftJson(['clustermesh', 'status', '--cluster', 'c1'])).remotes[0].state === 'synced', 'the link to come back', 30_000);
    assert.equal(await probe('c1/demo/client', ['--http', `http://${echo}:8081/`]), true);
  });

  it('heals by itself after both clusters\' etcds are killed and restarted', async () => {
    const lab = require('../packages/lab/dist/index.js');
    const { clusters } = lab.readLabState();
    const echo = ip(c2, 'demo/echo-2');
    for (const c of clusters) process.kill(lab.etcdPid(c), 'SIGKILL');
    // The datapath keeps the last state: traffic across clusters goes on without any etcd.
    assert.equal(await probe('c1/demo/client', ['--http', `http://${echo}:8081/`]), true, 'traffic while both etcds are down');
    for (const c of clusters) await lab.startEtcd(c);
    // A pod created in c2 after the restart must reach c1's nodes: c2's agent, c2's exporter,
    // c1's importer and c1's agents all had to find their etcd again.
    const pod = file('late.yaml', `apiVersion: v1
kind: Pod
metadata: { name: late, namespace: demo, labels: { app: echo } }
spec: { nodeName: c2-node2, containers: [ { name: e, command: [weft, echo-server, --http, "8081"] } ] }
`);
    assert.equal((await weft(['apply', '-f', pod, '--cluster', 'c2'])).code, 0);
    let lateIp;
    await until(async () => {
      lateIp = (await weftJson(['endpoint', 'list', '--cluster', 'c2'])).find((e) => e.pod === 'late')?.ip;
      return lateIp !== undefined;
    }, "c2's agent to run the new pod", 60_000);
    await until(async () => (await weftJson(['bpf', 'ipcache', 'list', '--cluster', 'c1'])).filter((e) => e.cidr === `${lateIp}/32`).length === 2, "every c1 node to learn the new c2 pod", 60_000);
    await until(() => probe('c1/demo/client', ['--http', `http://${lateIp}:8081/`]), 'traffic to the new pod', 30_000);
    const status = (await weftJson(['clustermesh', 'status', '--cluster', 'c1'])).remotes[0];
    assert.equal(status.state, 'synced');
    assert.equal((await weft(['delete', '-f', pod, '--cluster', 'c2'])).code, 0);
  });

  it('rejects hostile records from a remote, counts them, and writes nothing', async () => {
    // The lab's etcd admits only its CA's certificates: as its admin (weft-admin).
    const { labEtcdClient } = require('../packages/lab/dist/index.js');
    const c2kv = labEtcdClient({ etcdDir: '/var/run/weft/lab/c2/etcd' });
    const c1kv = labEtcdClient({ etcdDir: '/var/run/weft/lab/c1/etcd' });
    try {
      // c2 "exports" an endpoint inside c1's pod CIDR (under a node of c2 that claims that CIDR, or
      // c2's own exporter would not export it) and an identity of cluster 1.
      await c2kv.put('weft/state/v1/nodes/c2-evil', JSON.stringify({ name: 'c2-evil', cluster: 'c2', ip: '10.99.2.99', podCidr: '10.101.1.0/24', routing: 'vxlan' }));
      await c2kv.put('weft/state/v1/endpoints/c2-evil/10.101.1.99', JSON.stringify({ ip: '10.101.1.99', identity: (2 << 16) | 999, node: 'c2-evil', nodeIp: '10.99.2.99', namespace: 'x', pod: 'evil', labels: {} }));
      await c2kv.put('weft/identities/v1/id/66000', 'k8s:app=evil;k8s:weft.io/cluster=c2');
      await until(async () => {
        const s = await weftJson(['clustermesh', 'status', '--cluster', 'c1']);
        return s.remotes[0].rejected >= 2;
      }, 'c1 to reject both records');
      assert.equal(await c1kv.get('weft/mesh/v1/c2/endpoints/10.101.1.99'), undefined);
      assert.equal(await c1kv.get('weft/mesh/v1/c2/identities/66000'), undefined);
      const s = await weftJson(['clustermesh', 'status', '--cluster', 'c1']);
      assert.match(s.remotes[0].lastRejection, /outside cluster c2's range|is outside the pod CIDR 10\.102\.1\.0\/24 of its node c2-node1/);
    } finally {
      await c2kv.delete('weft/state/v1/endpoints/c2-evil/10.101.1.99').catch(() => undefined);
      await c2kv.delete('weft/state/v1/nodes/c2-evil').catch(() => undefined);
      await c2kv.delete('weft/identities/v1/id/66000').catch(() => undefined);
      c2kv.close();
      c1kv.close();
    }
  });
});

describe('clustermesh with direct routing (e2e, root)', function () {
  this.timeout(240_000);
  before(async function () {
    if (!isRoot()) return this.skip();
    const up = await weft(['lab', 'up', '--clusters', '2', '--nodes', '2', '--routing', 'direct']);
    assert.equal(up.code, 0, up.stderr);
  });
  after(async function () {
    if (isRoot()) assert.equal((await weft(['lab', 'down'])).code, 0);
  });

  it('routes pod-to-pod traffic across clusters without a tunnel', async () => {
    const c2 = await weftJson(['endpoint', 'list', '--cluster', 'c2']);
    const c1 = await weftJson(['endpoint', 'list', '--cluster', 'c1']);
    assert.equal(await probe('c1/demo/client', ['--http', `http://${c2.find((e) => e.pod === 'echo-2').ip}:8081/`]), true);
    assert.equal(await probe('c2/demo/client', ['--http', `http://${c1.find((e) => e.pod === 'echo-2').ip}:8081/`]), true);
  });
});

describe('clustermesh connect and disconnect (e2e, root)', function () {
  this.timeout(240_000);
  before(async function () {
    if (!isRoot()) return this.skip();
    const up = await weft(['lab', 'up', '--clusters', '2', '--nodes', '1', '--names', 'east,west', '--no-connect']);
    assert.equal(up.code, 0, up.stderr);
  });
  after(async function () {
    if (isRoot()) assert.equal((await weft(['lab', 'down'])).code, 0);
  });

  it('connects two clusters on demand, and disconnects them leaving nothing of the other behind', async () => {
    const west = await weftJson(['endpoint', 'list', '--cluster', 'west']);
    const target = ['--http', `http://${west.find((e) => e.pod === 'echo-1').ip}:8081/`];
    assert.equal(await probe('east/demo/client', target), false, 'unconnected clusters do not know each other');
    const c = await weft(['clustermesh', 'connect', '--cluster', 'east', '--to', 'west']);
    assert.equal(c.code, 0, c.stderr);
    await until(() => probe('east/demo/client', target), 'east to reach west');
    const status = await weftJson(['clustermesh', 'status', '--cluster', 'west']);
    assert.equal(status.remotes[0].name, 'east');
    const d = await weft(['clustermesh', 'disconnect', '--cluster', 'east', '--to', 'west']);
    assert.equal(d.code, 0, d.stderr);
    await until(async () => (await weftJson(['status', '--cluster', 'east']))[0].remoteEndpoints === 0, "east to forget west's pods");
    assert.equal(await probe('east/demo/client', target), false);
  });
});
