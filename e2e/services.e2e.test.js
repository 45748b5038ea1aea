// End to end, as root: ClusterIP services load-balanced by the BPF datapath, and global
// services across two connected clusters (spread, shared=false, affinity, failover and return),
// each proven with real connections from a pod to the service address.
'use strict';
const assert = require('node:assert/strict');
const { mkdtempSync, rmSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { WEFT, weft, weftJson, until, isRoot } = require('./helpers');

const ECHO = '[weft, echo-server, --tcp, "8080", --udp, "9090", --http, "8081"]';

function pods(cluster) {
  return `apiVersion: v1
kind: Namespace
metadata: { name: gs }
---
apiVersion: v1
kind: Pod
metadata: { name: echo-1, namespace: gs, labels: { app: echo } }
spec: { nodeName: ${cluster}-node1, containers: [ { name: e, command: ${ECHO} } ] }
---
apiVersion: v1
kind: Pod
metadata: { name: echo-2, namespace: gs, labels: { app: echo } }
spec: { nodeName: ${cluster}-node2, containers: [ { name: e, command: ${ECHO} } ] }
---
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: gs, labels: { app: client } }
spec: { nodeName: ${cluster}-node1, containers: [ { name: c, command: [sleep, infinity] } ] }
`;
}

function service(name, annotations = {}) {
  const a = Object.entries(annotations).map(([k, v]) => `${k}: "${v}"`).join(', ');
  return `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: gs, annotations: { ${a} } }
spec:
  selector: { app: echo }
  ports: [ { name: http, port: 80, targetPort: 8081 }, { name: dns, protocol: UDP, port: 53, targetPort: 9090 } ]
`;
}

/** One HTTP request from a pod; resolves "cluster/pod" of the answering server, or undefined. */
async function ask(pod, url) {
  const r = await weft(['lab', 'exec', pod, '--', process.execPath, WEFT, 'probe', '--timeout', '1500', '--http', url]);
  if (r.code !== 0) return undefined;
  const body = JSON.parse(JSON.parse(r.stdout).detail);
  return `${body.cluster}/${body.server}`;
}

async function spread(pod, url, n) {
  const seen = new Map();
  for (let i = 0; i < n; i++) {
    const s = (await ask(pod, url)) ?? 'no answer';
    seen.set(s, (seen.get(s) ?? 0) + 1);
  }
  return seen;
}

describe('services: ClusterIP and global services (e2e, root)', function () {
  this.timeout(300_000);
  let dir;
  const file = (name, text) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const apply = async (cluster, text, del = false) => {
    const r = await weft([del ? 'delete' : 'apply', '-f', file(`${cluster}-${Math.random().toString(36).slice(2)}.yaml`, text), '--cluster', cluster]);
    assert.equal(r.code, 0, r.stderr);
  };
  const vip = async (cluster, name) => (await weftJson(['service', 'list', '--cluster', cluster])).find((s) => s.name === name).clusterIP;

  before(async function () {
    if (!isRoot()) return this.skip();
    dir = mkdtempSync(join(tmpdir(), 'weft-services-'));
    const up = await weft(['lab', 'up', '--clusters', '2', '--nodes', '2', '--no-demo']);
    assert.equal(up.code, 0, up.stderr);
    await apply('c1', pods('c1'));
    await apply('c2', pods('c2'));
    await until(async () => (await weftJson(['status', '--cluster', 'c1'])).every((n) => n.remoteEndpoints >= 3), "c1's nodes to know c2's pods", 30_000);
  });

  after(async function () {
    if (!isRoot()) return;
    assert.equal((await weft(['lab', 'down'])).code, 0);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('balances a ClusterIP service over its pods on both nodes, TCP and UDP, replies from the service address', async () => {
    await apply('c1', service('local'));
    const ip = await vip('c1', 'local');
    assert.match(ip, /^10\.96\./);
    await until(async () => (await ask('c1/gs/client', `http://${ip}:80/`)) !== undefined, 'the service to answer');
    // A TCP connection to the ClusterIP only completes if replies come back from the ClusterIP.
    const seen = await spread('c1/gs/client', `http://${ip}:80/`, 16);
    assert.deepEqual([...seen.keys()].sort(), ['c1/gs/echo-1', 'c1/gs/echo-2'], `spread: ${JSON.stringify([...seen])}`);
    const udp = await weft(['lab', 'exec', 'c1/gs/client', '--', process.execPath, WEFT, 'probe', '--timeout', '1500', '--udp', `${ip}:53`]);
    assert.equal(udp.code, 0, udp.stdout + udp.stderr);
    const lb = await weftJson(['bpf', 'lb', 'list', '--cluster', 'c1']);
    assert.equal(lb.filter((f) => f.vip === ip).length, 4, 'both ports programmed on both nodes');
    assert.ok(lb.every((f) => f.backends.length === 2));
    // A plain service never gets another cluster's pods.
    assert.deepEqual(Object.keys((await weftJson(['service', 'list', '--cluster', 'c1'])).find((s) => s.name === 'local').available), ['c1']);
  });

  it('spreads a global service over the backends of both clusters', async () => {
    await apply('c1', service('global', { 'weft.io/global': 'true' }));
    await apply('c2', service('global', { 'weft.io/global': 'true' }));
    await until(async () => {
      const s = (await weftJson(['service', 'list', '--cluster', 'c1'])).find((x) => x.name === 'global');
      return s && s.available.c1?.length === 2 && s.available.c2?.length === 2;
    }, 'c1 to see both clusters\' backends', 30_000);
    const ip = await vip('c1', 'global');
    const seen = await spread('c1/gs/client', `http://${ip}:80/`, 24);
    const clusters = new Set([...seen.keys()].map((k) => k.split('/')[0]));
    assert.deepEqual([...clusters].sort(), ['c1', 'c2'], `spread: ${JSON.stringify([...seen])}`);
    // A full resync on demand finds the maps as the one-by-one updates left them: nothing moves.
    const before = await weftJson(['bpf', 'lb', 'list', '--cluster', 'c1']);
    const resync = await weftJson(['service', 'resync', '--cluster', 'c1']);
    assert.deepEqual(resync.map((r) => [r.node, r.scheduled]), [['c1-node1', true], ['c1-node2', true]]);
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual(await weftJson(['bpf', 'lb', 'list', '--cluster', 'c1']), before);
  });

  it('keeps a cluster\'s backends private with weft.io/shared: "false"', async () => {
    await apply('c2', service('global', { 'weft.io/global': 'true', 'weft.io/shared': 'false' }));
    await until(async () => !(await weftJson(['service', 'list', '--cluster', 'c1'])).find((x) => x.name === 'global').available.c2, "c2's backends to leave c1's service", 30_000);
    const seen = await spread('c1/gs/client', `http://${await vip('c1', 'global')}:80/`, 8);
    assert.deepEqual([...new Set([...seen.keys()].map((k) => k.split('/')[0]))], ['c1']);
    // c2 still uses c1's backends: not sharing is not isolation.
    const c2 = (await weftJson(['service', 'list', '--cluster', 'c2'])).find((x) => x.name === 'global');
    assert.equal(c2.available.c1.length, 2);
    await apply('c2', service('global', { 'weft.io/global': 'true' }));
  });

  it('prefers local backends with affinity local, fails over to the remote cluster, and comes back', async () => {
    await apply('c1', service('global', { 'weft.io/global': 'true', 'weft.io/affinity': 'local' }));
    const ip = await vip('c1', 'global');
    await until(async () => {
      const s = (await weftJson(['service', 'list', '--cluster', 'c1'])).find((x) => x.name === 'global');
      return s.affinity === 'local' && s.available.c2?.length === 2 && s.frontends[0].backends.every((b) => b.cluster === 'c1');
    }, 'affinity local to apply', 30_000);
    const local = await spread('c1/gs/client', `http://${ip}:80/`, 8);
    assert.deepEqual([...new Set([...local.keys()].map((k) => k.split('/')[0]))], ['c1'], `local: ${JSON.stringify([...local])}`);
    // The local backends go away: traffic fails over to c2 within seconds.
    const echoes = pods('c1').split('---\n').filter((d) => d.includes('app: echo')).join('---\n');
    const t0 = Date.now();
    await apply('c1', echoes, true);
    await until(async () => (await ask('c1/gs/client', `http://${ip}:80/`))?.startsWith('c2/'), 'failover to c2', 20_000);
    const failoverMs = Date.now() - t0;
    const remote = await spread('c1/gs/client', `http://${ip}:80/`, 6);
    assert.deepEqual([...new Set([...remote.keys()].map((k) => k.split('/')[0]))], ['c2'], `after failover: ${JSON.stringify([...remote])}`);
    // They come back: so does the traffic.
    await apply('c1', echoes);
    await until(async () => (await ask('c1/gs/client', `http://${ip}:80/`))?.startsWith('c1/'), 'return to c1', 30_000);
    const back = await spread('c1/gs/client', `http://${ip}:80/`, 8);
    assert.deepEqual([...new Set([...back.keys()].map((k) => k.split('/')[0]))], ['c1'], `after return: ${JSON.stringify([...back])}`);
    process.stderr.write(`      (failover to the remote cluster took ${failoverMs} ms from the delete command)\n`);
  });

  it('sends everything to the other cluster with affinity remote', async () => {
    await apply('c1', service('global', { 'weft.io/global': 'true', 'weft.io/affinity': 'remote' }));
    await until(async () => (await weftJson(['service', 'list', '--cluster', 'c1'])).find((x) => x.name === 'global').frontends[0].backends.every((b) => b.cluster === 'c2'), 'affinity remote to apply', 30_000);
    const seen = await spread('c1/gs/client', `http://${await vip('c1', 'global')}:80/`, 8);
    assert.deepEqual([...new Set([...seen.keys()].map((k) => k.split('/')[0]))], ['c2'], JSON.stringify([...seen]));
  });

  it('drops and reports traffic to a service without backends', async () => {
    const none = service('empty').replace('selector: { app: echo }', 'selector: { app: nobody }');
    await apply('c1', none);
    const ip = await vip('c1', 'empty');
    await until(async () => (await weftJson(['bpf', 'lb', 'list', '--cluster', 'c1'])).some((f) => f.vip === ip), 'the empty service to be programmed');
    assert.equal(await ask('c1/gs/client', `http://${ip}:80/`), undefined);
    const out = await weft(['observe', '--cluster', 'c1', '--namespace', 'gs', '--verdict', 'DROPPED', '-o', 'json']);
    const flows = out.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    assert.ok(flows.some((f) => f.dropReason === 'NO_SERVICE_BACKEND'), JSON.stringify(flows.slice(-3)));
  });
});
