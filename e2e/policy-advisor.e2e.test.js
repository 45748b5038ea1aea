// End to end, as root: the policy advisor on a two-cluster lab. Workloads talk (two frontend
// replicas to a backend, through its Service and directly; the backend to a database in the other
// cluster and to the world host), `weft policy suggest` writes each cluster's policies from what its
// nodes observed, twice the same; applied, the observed traffic still flows, connections nobody made
// while it watched are denied and show as DROPPED flows, and the same traffic again gives the same
// YAML.
'use strict';
const assert = require('node:assert/strict');
const { mkdtempSync, rmSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { weft, weftJson, probe, until, isRoot } = require('./helpers');

const WORLD = '10.99.255.250';

const C1 = `apiVersion: v1
kind: Namespace
metadata: { name: shop }
---
apiVersion: v1
kind: Pod
metadata: { name: frontend-6d4f-a, namespace: shop, labels: { app: frontend, pod-template-hash: 6d4f } }
spec: { nodeName: c1-node1, containers: [ { name: c, command: [sleep, infinity] } ] }
---
apiVersion: v1
kind: Pod
metadata: { name: frontend-8b2c-b, namespace: shop, labels: { app: frontend, pod-template-hash: 8b2c } }
spec: { nodeName: c1-node2, containers: [ { name: c, command: [sleep, infinity] } ] }
---
apiVersion: v1
kind: Pod
metadata: { name: backend, namespace: shop, labels: { app: backend } }
spec: { nodeName: c1-node2, containers: [ { name: e, command: [weft, echo-server, --tcp, "8080", --udp, "9090"] } ] }
---
apiVersion: v1
kind: Service
metadata: { name: backend, namespace: shop }
spec:
  selector: { app: backend }
  ports: [ { name: api, port: 80, targetPort: 8080 } ]
`;

const C2 = `apiVersion: v1
kind: Namespace
metadata: { name: data }
---
apiVersion: v1
kind: Pod
metadata: { name: db, namespace: data, labels: { app: db } }
spec: { nodeName: c2-node1, containers: [ { name: e, command: [weft, echo-server, --tcp, "5432"] } ] }
---
apiVersion: v1
kind: Pod
metadata: { name: tool, namespace: data, labels: { app: tool } }
spec: { nodeName: c2-node2, containers: [ { name: c, command: [sleep, infinity] } ] }
`;

const MANAGED = `  labels:
    app.kubernetes.io/managed-by: weft-policy-advisor
`;

/** What c1's nodes saw: frontend -> backend:8080 (both replicas, one workload), backend -> db in c2 and the world. */
const EXPECTED_C1 = `apiVersion: weft.io/v1
kind: WeftNetworkPolicy
metadata:
  name: weft-suggested-backend
  namespace: shop
${MANAGED}spec:
  endpointSelector:
    matchLabels:
      app: backend
  ingress:
    - fromEndpoints:
        - matchLabels:
            app: frontend
      toPorts:
        - ports:
            - port: "8080"
              protocol: TCP
  egress:
    - toEndpoints:
        - matchLabels:
            app: db
            io.kubernetes.pod.namespace: data
            weft.io/cluster: c2
      toPorts:
        - ports:
            - port: "5432"
              protocol: TCP
    - toCIDR:
        - ${WORLD}/32
      toPorts:
        - ports:
            - port: "8080"
              protocol: TCP
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: weft-suggested-frontend
  namespace: shop
${MANAGED}spec:
  podSelector:
    matchLabels:
      app: frontend
  policyTypes:
    - Ingress
    - Egress
  ingress: []
  egress:
    - to:
        - podSelector:
            matchLabels:
              app: backend
      ports:
        - protocol: TCP
          port: 8080
`;

/** What c2's nodes saw: db answering the backend of c1. */
const EXPECTED_C2 = `apiVersion: weft.io/v1
kind: WeftNetworkPolicy
metadata:
  name: weft-suggested-db
  namespace: data
${MANAGED}spec:
  endpointSelector:
    matchLabels:
      app: db
  ingress:
    - fromEndpoints:
        - matchLabels:
            app: backend
            io.kubernetes.pod.namespace: shop
            weft.io/cluster: c1
      toPorts:
        - ports:
            - port: "5432"
              protocol: TCP
  egress: []
`;

describe('policy advisor: suggest from observed traffic, apply, and the rest is denied (e2e, root)', function () {
  this.timeout(600_000);
  let dir;
  const ips = {};
  let vip;
  const file = (name, text) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const apply = async (cluster, text, name) => {
    const r = await weft(['apply', '-f', file(name, text), '--cluster', cluster]);
    assert.equal(r.code, 0, r.stderr);
  };
  const suggest = (cluster, since) => weft(['policy', 'suggest', '--cluster', cluster, '--since', since, '-o', 'yaml']);

  /** The traffic the advisor watches: every connection here must still work under its policies. */
  const observed = () => [
    ['c1/shop/frontend-6d4f-a', ['--tcp', `${vip}:80`], 'frontend (replica a) -> backend through its Service'],
    ['c1/shop/frontend-8b2c-b', ['--tcp', `${ips['shop/backend']}:8080`], 'frontend (replica b) -> backend directly'],
    ['c1/shop/backend', ['--tcp', `${ips['data/db']}:5432`], 'backend -> db in c2'],
    ['c1/shop/backend', ['--tcp', `${WORLD}:8080`], 'backend -> the world host'],
  ];
  /** Connections nobody made while the advisor watched. */
  const unobserved = () => [
    ['c1/shop/frontend-6d4f-a', ['--tcp', `${ips['data/db']}:5432`], 'frontend -> db in c2 (frontend egress)'],
    ['c1/shop/frontend-8b2c-b', ['--udp', `${ips['shop/backend']}:9090`], 'frontend -> backend on UDP 9090 (another port)'],
    ['c1/shop/backend', ['--udp', `${WORLD}:9090`], 'backend -> the world host on UDP 9090 (another port)'],
    ['c2/data/tool', ['--tcp', `${ips['data/db']}:5432`], 'tool -> db in c2 (db ingress)'],
  ];

  before(async function () {
    if (!isRoot()) return this.skip();
    dir = mkdtempSync(join(tmpdir(), 'weft-advisor-'));
    const up = await weft(['lab', 'up', '--clusters', '2', '--nodes', '2', '--no-demo'], { timeout: 300_000 });
    assert.equal(up.code, 0, up.stderr);
    await apply('c1', C1, 'c1.yaml');
    await apply('c2', C2, 'c2.yaml');
    await until(async () => {
      for (const c of ['c1', 'c2']) for (const e of await weftJson(['endpoint', 'list', '--cluster', c])) ips[`${e.namespace}/${e.pod}`] = e.ip;
      return ['shop/backend', 'shop/frontend-6d4f-a', 'shop/frontend-8b2c-b', 'data/db', 'data/tool'].every((p) => ips[p]);
    }, 'every pod to be an endpoint', 60_000);
    await until(async () => (await weftJson(['status', '--cluster', 'c1'])).every((n) => n.remoteEndpoints >= 2), "c1's nodes to know c2's pods", 60_000);
    await until(async () => {
      vip = (await weftJson(['service', 'list', '--cluster', 'c1'])).find((s) => s.name === 'backend')?.clusterIP;
      return vip !== undefined;
    }, 'the backend service');
    // Without policies everything answers: a denial later is the policies' doing.
    for (const [pod, target, what] of [...observed(), ...unobserved()]) await until(() => probe(pod, target), `${what} to answer before any policy`, 30_000);
  });

  after(async function () {
    if (!isRoot()) return;
    assert.equal((await weft(['lab', 'down'])).code, 0);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  let since;

  it('writes the least-privilege policies of what each cluster observed, the same twice', async () => {
    // Only what happens from here on counts (the probes above tried everything).
    await new Promise((r) => setTimeout(r, 1500));
    since = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 1000));
    for (const [pod, target, what] of observed()) assert.equal(await probe(pod, target), true, what);
    for (const [cluster, expected] of [['c1', EXPECTED_C1], ['c2', EXPECTED_C2]]) {
      let last;
      // The flows reach the observers within moments; wait for all of them.
      await until(async () => (last = await suggest(cluster, since)).stdout === expected, `${cluster}'s suggestion`, 15_000).catch((err) => {
        throw new Error(`${err.message}\n--- got (exit ${last?.code}):\n${last?.stdout}\n--- stderr:\n${last?.stderr}`);
      });
      assert.equal(last.code, 0, last.stderr);
      assert.match(last.stderr, new RegExp(`flows of ${cluster}, \\d+ connections of \\d+ workloads: ${cluster === 'c1' ? 2 : 1} policies`));
      const again = await suggest(cluster, since);
      assert.equal(again.stdout, last.stdout, `${cluster}: the same flows, the same YAML`);
      file(`suggested-${cluster}.yaml`, last.stdout);
    }
  });

  it('keeps the observed traffic flowing once applied, and denies what was not observed, reporting it as DROPPED', async () => {
    assert.ok(since, 'the suggestion was written');
    for (const c of ['c1', 'c2']) {
      const r = await weft(['apply', '-f', join(dir, `suggested-${c}.yaml`), '--cluster', c]);
      assert.equal(r.code, 0, r.stderr);
    }
    for (const [pod, target, what] of unobserved()) await until(async () => !(await probe(pod, target)), `${what} to be denied`, 30_000);
    for (const [pod, target, what] of observed()) assert.equal(await probe(pod, target), true, `${what} still answers`);
    for (const [pod, target, what] of unobserved()) assert.equal(await probe(pod, target), false, `${what} stays denied`);

    const dropped = async (cluster, args) => (await weft(['observe', '--cluster', cluster, '--since', since, '--verdict', 'DROPPED', ...args, '-o', 'json'])).stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const toDb = await dropped('c1', ['--from-pod', 'shop/frontend-6d4f-a']);
    assert.ok(toDb.some((f) => f.destination.ip === ips['data/db'] && f.destination.port === 5432 && f.dropReason === 'POLICY_DENIED' && f.point === 'from-endpoint'), `frontend -> db dropped at frontend's egress: ${JSON.stringify(toDb)}`);
    const udp = await dropped('c1', ['--to-pod', 'shop/backend']);
    assert.ok(udp.some((f) => f.protocol === 'UDP' && f.destination.port === 9090 && f.dropReason === 'POLICY_DENIED'), `frontend -> backend UDP dropped: ${JSON.stringify(udp)}`);
    const world = await dropped('c1', ['--from-pod', 'shop/backend']);
    assert.ok(world.some((f) => f.destination.ip === WORLD && f.destination.port === 9090 && f.dropReason === 'POLICY_DENIED'), `backend -> world UDP dropped: ${JSON.stringify(world)}`);
    const tool = await dropped('c2', ['--to-pod', 'data/db']);
    assert.ok(tool.some((f) => f.source.pod === 'tool' && f.point === 'to-endpoint' && f.dropReason === 'POLICY_DENIED'), `tool -> db dropped at db's ingress: ${JSON.stringify(tool)}`);
  });

  it('writes the same YAML for the same traffic under its own policies (drops are not traffic to admit)', async () => {
    await new Promise((r) => setTimeout(r, 1500));
    const again = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 1000));
    for (const [pod, target, what] of observed()) assert.equal(await probe(pod, target), true, what);
    for (const [pod, target] of unobserved()) await probe(pod, target);
    for (const [cluster, expected] of [['c1', EXPECTED_C1], ['c2', EXPECTED_C2]]) {
      let last;
      await until(async () => (last = await suggest(cluster, again)).stdout === expected, `${cluster}'s suggestion under its policies`, 15_000).catch((err) => {
        throw new Error(`${err.message}\n--- got (exit ${last?.code}):\n${last?.stdout}\n--- stderr:\n${last?.stderr}`);
      });
      assert.deepEqual(last.stderr.split('\n').filter((l) => l.startsWith('weft: ') && !/ flows of /.test(l)), [], 'no warnings');
    }
  });
});
