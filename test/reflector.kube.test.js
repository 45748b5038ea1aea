// Weft's Kubernetes source (packages/kubernetes: its own reflector) against a real kube-apiserver
// (hack/kube/build.sh's, started here on loopback; test/kube-api.js): watch bookmarks as the
// server sends them, 410 Gone and a relist after the server restarted (with nothing changed; with
// writes through another API server and etcd compacted meanwhile), only differences delivered, and a
// WeftNetworkPolicy the server accepts (an older, looser CRD) but Weft refuses, reported with its
// kind, namespace and name. Needs hack/kube/build.sh's tools and `npx tsc -b`. No root.
'use strict';
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const { readFileSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { startApiServer, waitForKubeBuild } = require('./kube-api.js');
const ROOT = join(__dirname, '..');
const { KubernetesSource } = require('../packages/kubernetes/dist/index.js');
const { controlPlaneCommands } = require('../packages/lab/dist/index.js');
const { Backoff, silentLogger } = require('../packages/common/dist/index.js');
const { KvClient, freePort } = require('../packages/kvstore/dist/index.js');
const { parseYamlDocuments, resourceKey, validateResource } = require('../packages/resources/dist/index.js');

/** What a consumer keeps: objects by key, the invalid ones, and the order of changes. */
class Model {
  constructor() {
    this.items = new Map();
    this.invalid = new Map();
    this.log = [];
    this.synced = 0;
    this.handler = {
      onChange: (type, key, r) => {
        this.log.push(`${type} ${key.replace('weft/resources/v1/', '')}`);
        this.invalid.delete(key);
        if (type === 'delete') this.items.delete(key);
        else this.items.set(key, r);
      },
      onSynced: () => this.synced++,
      onInvalid: (key, err) => this.invalid.set(key, err.message),
    };
  }
}

async function eventually(test, what, timeoutMs = 30_000) {
  const until = Date.now() + timeoutMs;
  while (!(await test())) {
    if (Date.now() > until) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const service = (name, port = 80) => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec: { ports: [{ port }], selector: { app: name } } });

describe('Kubernetes source against a real API server', function () {
  this.timeout(180_000);
  waitForKubeBuild();
  let api;
  let source;
  const watches = [];

  before(async () => {
    api = await startApiServer('reflector');
    source = await KubernetesSource.create({ cluster: 'c1', kubeconfig: api.cp.kubeconfig, logger: silentLogger(), backoff: () => new Backoff({ initialMs: 50, maxMs: 500 }), reflector: { watchTimeoutSeconds: 5 } });
  });
  afterEach(async () => {
    await Promise.all(watches.splice(0).map((w) => w.stop()));
  });
  after(() => api?.stop());

  const watch = (kind, model) => {
    const w = source.watch(kind, model.handler);
    watches.push(w);
    return w;
  };
  const call = async (method, path, body, ok = [200, 201]) => {
    const r = await api.call(method, path, body);
    assert.ok(ok.includes(r.status), `${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };

  it('takes the bookmarks the server sends on a quiet watch, and resumes from them without a relist', async () => {
    const model = new Model();
    const r = watch('Namespace', model);
    await eventually(() => model.synced === 1, 'the first list');
    const listed = Number(r.resourceVersion);
    // Writes of a kind nobody watches here move the resource version on; only a bookmark tells the watch.
    const cm = await call('POST', '/api/v1/namespaces/default/configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'rv-mover' }, data: { a: '1' } });
    await eventually(() => r.stats.bookmarks >= 1 && Number(r.resourceVersion) >= Number(cm.metadata.resourceVersion), 'a bookmark past the ConfigMap');
    assert.ok(Number(r.resourceVersion) > listed);
    // The server ends each watch at its timeout (5 s here, a bookmark 2 s before); the next starts at the bookmark.
    await eventually(() => r.stats.watches >= 2, 'a second watch');
    assert.equal(r.stats.lists, 1, 'no relist');
    assert.equal(r.stats.expired, 0);
    assert.deepEqual(model.log.sort(), ['upsert Namespace/_/default', 'upsert Namespace/_/kube-node-lease', 'upsert Namespace/_/kube-public', 'upsert Namespace/_/kube-system']);
    await call('DELETE', '/api/v1/namespaces/default/configmaps/rv-mover');
  });

  it('relists after 410 Gone when the API server restarted, also with writes elsewhere and etcd compacted meanwhile, delivering only the differences', async () => {
    for (const name of ['a', 'b', 'c']) await call('POST', '/api/v1/namespaces/default/services', service(name));
    const model = new Model();
    const r = watch('Service', model);
    await eventually(() => model.items.has('weft/resources/v1/Service/default/c'), 'the services');
    model.log.length = 0;

    // 1. A restart with no Service changed meanwhile. The new server's watch cache starts at its own
    // first list, after what it wrote while starting, so the watch from before is 410 Gone (the
    // recorded fixtures had a restart resume in place; a real server does not): the reflector
    // relists and delivers nothing, since nothing it had changed.
    await api.cp.stopComponent('kube-apiserver');
    await api.cp.startComponent('kube-apiserver');
    await eventually(() => r.stats.lists === 2 && model.synced === 2, 'the relist after the restart');
    assert.equal(r.stats.expired, 1, JSON.stringify(r.stats));
    assert.deepEqual(model.log, [], 'nothing unchanged is delivered again');
    await call('PATCH', '/api/v1/namespaces/default/services/c', { metadata: { labels: { v: '2' } } });
    await eventually(() => model.log.length === 1, 'the change after the restart');
    assert.deepEqual(model.log, ['upsert Service/default/c']);
    model.log.length = 0;

    // 2. It goes down; another API server on the same etcd serves the writes (as in an HA control
    // plane); etcd is compacted past what this watch saw; it comes back.
    await api.cp.stopComponent('kube-apiserver');
    const port = await freePort();
    const { argv } = controlPlaneCommands({ ...api.cp.spec, ports: { ...api.cp.spec.ports, apiserver: port } }).find((c) => c.component === 'kube-apiserver');
    const other = spawn(argv[0], argv.slice(1), { stdio: 'ignore' });
    try {
      const config = JSON.parse(readFileSync(api.cp.kubeconfig, 'utf8'));
      config.clusters[0].cluster.server = `https://127.0.0.1:${port}`;
      const otherConfig = join(api.cp.spec.dir, 'other.kubeconfig');
      writeFileSync(otherConfig, JSON.stringify(config));
      const kubectl = (...args) => api.kubectl(['--kubeconfig', otherConfig, ...args]);
      await eventually(() => kubectl('get', '--raw', '/readyz').status === 0, 'the other API server');
      assert.equal(kubectl('delete', 'service', 'b').status, 0);
      assert.equal(kubectl('label', 'service', 'a', 'v=2').status, 0);
      assert.equal(kubectl('create', 'service', 'clusterip', 'd', '--tcp=80').status, 0);
      const { etcd } = api.cp.files;
      const kv = new KvClient({ endpoints: [etcd.endpoint], tls: { ca: readFileSync(etcd.ca), cert: readFileSync(etcd.cert), key: readFileSync(etcd.key) } });
      try {
        await kv.compact(await kv.revision());
      } finally {
        kv.close();
      }
    } finally {
      const gone = new Promise((done) => other.once('exit', done));
      other.kill('SIGTERM');
      await gone;
    }
    await api.cp.startComponent('kube-apiserver');
    await eventually(() => r.stats.lists === 3 && model.synced === 3, 'the relist');
    assert.equal(r.stats.expired, 2, `410 Gone: ${JSON.stringify(r.stats)}`);
    // Only the differences: b went, a changed, d is new; c, unchanged, is not delivered again.
    assert.deepEqual(model.log.sort(), ['delete Service/default/b', 'upsert Service/default/a', 'upsert Service/default/d']);
    for (const name of ['a', 'c', 'd']) assert.ok(model.items.has(`weft/resources/v1/Service/default/${name}`), name);
    assert.equal(model.items.has('weft/resources/v1/Service/default/b'), false);
    assert.deepEqual(model.items.get('weft/resources/v1/Service/default/a').metadata.labels, { v: '2' });
    for (const name of ['a', 'c', 'd']) await call('DELETE', `/api/v1/namespaces/default/services/${name}`);
  });

  it('delivers what standalone mode makes of the same objects applied with kubectl (testdata/cluster.yaml)', async () => {
    const file = join(ROOT, 'packages', 'kubernetes', 'testdata', 'cluster.yaml');
    assert.equal(api.kubectl(['apply', '--server-side', '-f', join(ROOT, 'charts', 'weft', 'crds')]).status, 0);
    assert.equal(api.kubectl(['wait', '--for=condition=Established', 'crd', '--all', '--timeout=60s']).status, 0);
    // The namespace first, and its default ServiceAccount (no controller-manager here) for the pods.
    assert.equal(api.kubectl(['create', 'namespace', 'shop']).status, 0);
    await call('POST', '/api/v1/namespaces/shop/serviceaccounts', { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default' } });
    const docs = parseYamlDocuments(readFileSync(file, 'utf8'), 'cluster.yaml');
    // Kubernetes needs an image (standalone mode runs the command itself), as cluster.json has.
    const objects = docs.map((d) => structuredClone(d.value)).map((o) => (o.kind === 'Pod' && o.spec.containers.forEach((c) => (c.image = 'registry.example/weft:0.1')), o));
    const r = api.kubectl(['apply', '--server-side', '--force-conflicts', '-f', '-'], objects.map((o) => JSON.stringify(o)).join('\n'));
    assert.equal(r.status, 0, r.stderr);
    const standalone = docs.map((d) => JSON.parse(JSON.stringify(validateResource(d.value, `#${d.index}`, 'c1'))));
    const model = new Model();
    await Promise.all(['Namespace', 'Pod', 'Service', 'NetworkPolicy', 'WeftNetworkPolicy', 'WeftClusterwideNetworkPolicy'].map((k) => watch(k, model).waitSynced()));
    const differ = [];
    for (const want of standalone) {
      const key = resourceKey(want);
      const got = model.items.get(key);
      // The API server's own Service: its targetPort is the port this test's server listens on.
      if (key === 'weft/resources/v1/Service/default/kubernetes') {
        assert.equal(got.spec.clusterIP, '10.96.0.1');
        continue;
      }
      try {
        assert.deepEqual(got, want);
      } catch {
        differ.push(`${key}: ${JSON.stringify(got)}`);
      }
    }
    assert.deepEqual(differ, [], 'objects the Kubernetes source delivers differently from standalone mode');
  });

  it('reports a Weft object the API server accepts but Weft refuses with its kind, namespace and name, and skips it', async () => {
    const r = api.kubectl(['apply', '--server-side', '-f', join(ROOT, 'charts', 'weft', 'crds')]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(api.kubectl(['wait', '--for=condition=Established', 'crd', '--all', '--timeout=60s']).status, 0);
    // An older CRD without the port bound (version skew between a chart and its agents): the server takes port 70000.
    const at = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/weftnetworkpolicies.weft.io';
    const crd = await call('GET', at);
    const unbound = (s) => {
      if (s && typeof s === 'object') for (const [k, x] of Object.entries(s)) k === 'port' ? delete x.maximum : unbound(x);
    };
    unbound(crd.spec.versions[0].schema.openAPIV3Schema);
    await call('PUT', at, crd);
    await call('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo' } });
    const policy = (name, port) => ({ apiVersion: 'weft.io/v1', kind: 'WeftNetworkPolicy', metadata: { name, namespace: 'demo' }, spec: { endpointSelector: {}, ingress: [{ toPorts: [{ ports: [{ port }] }] }] } });
    await eventually(async () => (await api.call('POST', '/apis/weft.io/v1/namespaces/demo/weftnetworkpolicies', policy('too-far', 70000))).status === 201, 'the looser CRD in effect');
    await call('POST', '/apis/weft.io/v1/namespaces/demo/weftnetworkpolicies', policy('fine', 443));
    const model = new Model();
    watch('WeftNetworkPolicy', model);
    await eventually(() => model.synced === 1 && model.invalid.size === 1, 'the list');
    assert.deepEqual([...model.items.keys()].filter((k) => k.includes('/demo/')), ['weft/resources/v1/WeftNetworkPolicy/demo/fine']);
    const [[key, message]] = [...model.invalid];
    assert.equal(key, 'weft/resources/v1/WeftNetworkPolicy/demo/too-far');
    assert.match(message, /WeftNetworkPolicy demo\/too-far/);
    assert.match(message, /70000/);
  });
});
