// `weft uninstall-cleanup` (the chart's post-delete hook) against a real kube-apiserver with the
// chart's CRDs: it waits while a pod of the release's agent exists, then deletes this cluster's
// WeftNodes and WeftIdentities and nothing else (another cluster's, the user's policies, the CRDs).
// No root; no kubelet (the pod stays Pending until the test deletes it).
'use strict';
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const { mkdtempSync, rmSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { startApiServer, waitForKubeBuild } = require('./kube-api.js');

const WEFT = join(__dirname, '..', 'packages', 'cli', 'bin', 'weft.js');

describe('weft uninstall-cleanup on a real API server', function () {
  this.timeout(120_000);
  waitForKubeBuild();
  let api;
  let dir;

  before(async () => {
    api = await startApiServer('cleanup');
    dir = mkdtempSync(join(tmpdir(), 'weft-cleanup-'));
    const crds = api.kubectl(['apply', '--server-side', '-f', join(__dirname, '..', 'charts', 'weft', 'crds')]);
    assert.equal(crds.status, 0, crds.stderr);
    assert.equal(api.kubectl(['wait', '--for=condition=Established', 'crd', '--all', '--timeout=60s']).status, 0);
    const node = (name, cluster) => ({ apiVersion: 'weft.io/v1', kind: 'WeftNode', metadata: { name }, spec: { cluster, clusterId: cluster === 'east' ? 1 : 2, nodeIp: '172.18.0.3', podCidr: '10.244.1.0/24', routing: 'vxlan' } });
    const identity = (id, cluster) => ({ apiVersion: 'weft.io/v1', kind: 'WeftIdentity', metadata: { name: String(id), labels: { 'weft.io/cluster': cluster } }, spec: { labels: { 'k8s:app': 'web', 'k8s:weft.io/cluster': cluster } } });
    const items = [
      node('east-1', 'east'), node('east-2', 'east'), node('west-1', 'west'),
      identity(65793, 'east'), identity(65794, 'east'), identity(131329, 'west'),
      { apiVersion: 'weft.io/v1', kind: 'WeftNetworkPolicy', metadata: { name: 'mine', namespace: 'default' }, spec: { endpointSelector: {} } },
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'weft-agent', namespace: 'kube-system' } },
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'weft-agent-x1', namespace: 'kube-system', labels: { 'app.kubernetes.io/name': 'weft', 'app.kubernetes.io/instance': 'weft', 'app.kubernetes.io/component': 'agent' } }, spec: { serviceAccountName: 'weft-agent', automountServiceAccountToken: false, containers: [{ name: 'agent', image: 'ghcr.io/weft-mesh/weft:0.1.0' }] } },
    ];
    const r = api.kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
    assert.equal(r.status, 0, r.stderr);
  });

  after(async () => {
    await api?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const names = (kind) => JSON.parse(api.kubectl(['get', kind, '-A', '-o', 'json']).stdout).items.map((o) => o.metadata.name).sort();

  it('waits for the release\'s agent to go, then deletes this cluster\'s WeftNodes and WeftIdentities only', async () => {
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, api.kubectl(['config', 'view', '--raw', '--flatten']).stdout);
    const child = spawn(process.execPath, [WEFT, 'uninstall-cleanup', '--cluster', 'east', '--context', api.kubectl(['config', 'current-context']).stdout.trim(), '--timeout', '60', '-o', 'json'], { env: { ...process.env, KUBECONFIG: kubeconfig } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    const exited = new Promise((resolve) => child.on('exit', resolve));
    await new Promise((r) => setTimeout(r, 4000));
    assert.equal(child.exitCode, null, `it did not wait: ${stderr}`);
    assert.match(stderr, /waiting for 1 pod\(s\) of release kube-system\/weft to go: weft-agent-x1/);
    assert.deepEqual(names('weftnodes'), ['east-1', 'east-2', 'west-1'], 'nothing deleted while the agent could write again');
    assert.equal(api.kubectl(['delete', 'pod', '-n', 'kube-system', 'weft-agent-x1', '--grace-period=0', '--force']).status, 0);
    assert.equal(await exited, 0, stderr);
    assert.deepEqual(JSON.parse(stdout), { cluster: 'east', weftNodes: ['east-1', 'east-2'], weftIdentities: ['65793', '65794'] });
    assert.deepEqual(names('weftnodes'), ['west-1']);
    assert.deepEqual(names('weftidentities'), ['131329']);
    assert.deepEqual(names('weftnetworkpolicies'), ['mine'], 'the user\'s policy stays');
  });
});
