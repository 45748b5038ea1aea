// `weft clustermesh connect|disconnect --context A --destination-context B` as a user runs it: two
// real kube-apiservers (test/kube-api.js), charts/weft installed in each by the real helm, their
// nodes registered, and the CLI reaching both through one kubeconfig. What connect writes is read
// back from the servers; a `helm upgrade` keeps it; disconnect and `helm uninstall` leave nothing
// of Weft but the CRDs. No root; the clustermesh-apiservers are not run here (no kubelet), so
// connect runs without --wait.
'use strict';
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const { X509Certificate } = require('node:crypto');
const { mkdtempSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { startApiServer, waitForKubeBuild } = require('./kube-api.js');
const { kubeTool } = require('../packages/lab/dist/index.js');

const ROOT = join(__dirname, '..');
const WEFT = join(ROOT, 'packages', 'cli', 'bin', 'weft.js');
const NS = 'kube-system';
const CLUSTERS = { east: { id: 1, nodes: ['172.18.0.2', '172.18.0.3'] }, west: { id: 2, nodes: ['172.18.0.4', '172.18.0.5'] } };

describe('clustermesh connect on real API servers with the chart installed by helm', function () {
  this.timeout(180_000);
  waitForKubeBuild();
  let dir;
  let kubeconfig;
  const api = {};
  const env = () => ({ ...process.env, KUBECONFIG: kubeconfig, HELM_CACHE_HOME: join(dir, 'helm'), HELM_CONFIG_HOME: join(dir, 'helm'), HELM_DATA_HOME: join(dir, 'helm'), WEFT_LOG_LEVEL: 'warn' });
  const helm = (context, ...args) => spawnSync(kubeTool('helm'), ['--kube-context', context, ...args], { encoding: 'utf8', env: env(), timeout: 120_000 });
  const weft = (...args) => spawnSync(process.execPath, [WEFT, ...args], { encoding: 'utf8', env: env(), timeout: 120_000 });
  const secret = async (name, cluster) => {
    const r = await api[cluster].call('GET', `/api/v1/namespaces/${NS}/secrets/${name}`);
    return r.status === 200 ? r.body : undefined;
  };
  const entry = (s, key) => JSON.parse(Buffer.from(s.data[key], 'base64').toString('utf8'));
  const install = (name, verb = 'install') => {
    const c = CLUSTERS[name];
    const r = helm(name, verb, 'weft', join(ROOT, 'charts', 'weft'), '--namespace', NS, '--set', `cluster.name=${name},cluster.id=${c.id},clustermesh.enabled=true`, '--set', `tls.server.ipAddresses={${c.nodes.join(',')}}`);
    assert.equal(r.status, 0, `helm ${verb} in ${name}: ${r.stderr}`);
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-kube-connect-'));
    // One kubeconfig with a context per cluster, as a user has.
    const merged = { apiVersion: 'v1', kind: 'Config', clusters: [], users: [], contexts: [], 'current-context': 'east' };
    for (const name of Object.keys(CLUSTERS)) {
      api[name] = await startApiServer(name);
      const cfg = JSON.parse(readFileSync(api[name].cp.kubeconfig, 'utf8'));
      merged.clusters.push(cfg.clusters[0]);
      merged.users.push({ name: `${name}-admin`, user: cfg.users[0].user });
      merged.contexts.push({ name, context: { cluster: name, user: `${name}-admin` } });
      // The nodes, as kubelets register them: connect finds the NodePort's addresses on them.
      for (const [i, ip] of CLUSTERS[name].nodes.entries()) {
        const node = `${name}-node${i + 1}`;
        assert.equal((await api[name].call('POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: node } })).status, 201);
        const st = await api[name].call('PATCH', `/api/v1/nodes/${node}/status`, { status: { addresses: [{ type: 'InternalIP', address: ip }, { type: 'Hostname', address: node }] } });
        assert.equal(st.status, 200, JSON.stringify(st.body));
      }
    }
    kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, JSON.stringify(merged), { mode: 0o600 });
    for (const name of Object.keys(CLUSTERS)) install(name);
  });
  after(async () => {
    for (const a of Object.values(api)) await a.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('gives each side the other\'s CA, address and a client certificate from the other\'s CA, and restarts both apiservers', async () => {
    const r = weft('clustermesh', 'connect', '--context', 'east', '--destination-context', 'west', '-o', 'json');
    assert.equal(r.status, 0, r.stderr);
    const result = JSON.parse(r.stdout);
    // Each side's address is its own, where the other dials it: the first node its server certificate names.
    assert.deepEqual(result.clusters.map((c) => [c.cluster, c.remote, c.address, c.change, c.restarted]), [['east', 'west', '172.18.0.2:32379', 'created', true], ['west', 'east', '172.18.0.4:32379', 'created', true]]);
    for (const [here, there] of [['east', 'west'], ['west', 'east']]) {
      const remotes = await secret('weft-clustermesh-remotes', here);
      assert.ok(remotes, `${here} has the remotes Secret`);
      assert.equal(remotes.metadata.labels['app.kubernetes.io/managed-by'], 'weft-clustermesh-connect', 'not helm\'s, so an upgrade keeps it');
      const e = entry(remotes, `${there}.json`);
      const theirCa = Buffer.from((await secret('weft-clustermesh-ca', there)).data['ca.crt'], 'base64').toString('utf8');
      assert.equal(e.ca, theirCa);
      const cert = new X509Certificate(e.cert);
      assert.equal(cert.subject, `CN=${here}`);
      assert.ok(cert.verify(new X509Certificate(theirCa).publicKey), `${here}'s client certificate is from ${there}'s CA`);
      const deployment = (await api[here].call('GET', `/apis/apps/v1/namespaces/${NS}/deployments/weft-clustermesh-apiserver`)).body;
      assert.ok(deployment.spec.template.metadata.annotations?.['kubectl.kubernetes.io/restartedAt'], `${here}'s apiserver restarted`);
    }
  });

  it('keeps the connection across a helm upgrade (the Secret is not the release\'s)', async () => {
    const before = await secret('weft-clustermesh-remotes', 'east');
    install('east', 'upgrade');
    const after = await secret('weft-clustermesh-remotes', 'east');
    assert.deepEqual(after.data, before.data);
    // The upgraded Deployment still mounts it.
    const pod = (await api.east.call('GET', `/apis/apps/v1/namespaces/${NS}/deployments/weft-clustermesh-apiserver`)).body.spec.template.spec;
    assert.ok(pod.volumes.some((v) => v.secret?.secretName === 'weft-clustermesh-remotes'));
  });

  it('refuses to connect a cluster to itself, writing nothing', async () => {
    const before = await secret('weft-clustermesh-remotes', 'east');
    const r = weft('clustermesh', 'connect', '--context', 'east', '--destination-context', 'east');
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /east/);
    assert.deepEqual((await secret('weft-clustermesh-remotes', 'east')).data, before.data);
  });

  it('disconnects both sides, and helm uninstall then leaves nothing of Weft but the CRDs', async () => {
    const r = weft('clustermesh', 'disconnect', '--context', 'east', '--destination-context', 'west', '-o', 'json');
    assert.equal(r.status, 0, r.stderr);
    for (const name of Object.keys(CLUSTERS)) {
      const remotes = await secret('weft-clustermesh-remotes', name);
      assert.equal(remotes, undefined, `${name}: the remotes Secret goes with its last remote`);
      // No kubelet runs the post-delete hook's Job here: e2e/lab-kubernetes.kube.test.js runs it.
      const u = helm(name, 'uninstall', 'weft', '--namespace', NS, '--wait', '--no-hooks');
      assert.equal(u.status, 0, u.stderr);
      const left = [];
      for (const [kind, path] of [['secrets', `/api/v1/namespaces/${NS}/secrets`], ['configmaps', `/api/v1/namespaces/${NS}/configmaps`], ['deployments', `/apis/apps/v1/namespaces/${NS}/deployments`], ['daemonsets', `/apis/apps/v1/namespaces/${NS}/daemonsets`], ['services', `/api/v1/namespaces/${NS}/services`], ['serviceaccounts', `/api/v1/namespaces/${NS}/serviceaccounts`], ['clusterroles', '/apis/rbac.authorization.k8s.io/v1/clusterroles'], ['clusterrolebindings', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings'], ['validatingadmissionpolicies', '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies']]) {
        for (const item of (await api[name].call('GET', path)).body.items) if (item.metadata.name.startsWith('weft')) left.push(`${kind}/${item.metadata.name}`);
      }
      assert.deepEqual(left, [], `${name}: what helm uninstall left`);
    }
  });
});
