// End to end, as root: `weft lab up --kubernetes` gives each lab cluster a real control plane
// (etcd 3.6, kube-apiserver with Node,RBAC, controller-manager, scheduler: hack/kube/build.sh's)
// in its control-plane namespace, nodes registered by the lab kubelet with their own credentials,
// a kubeconfig context per cluster, and Weft installed by `helm install charts/weft`; `weft lab
// down` removes all of it, the contexts included.
'use strict';
const assert = require('node:assert/strict');
const { execFileSync, spawnSync } = require('node:child_process');
const { mkdtempSync, readFileSync, readdirSync, rmSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { weft, weftJson, isRoot } = require('./helpers');
const { kubeTool } = require('../packages/lab/dist/index.js');

describe('lab with Kubernetes: two clusters of two nodes (e2e, root)', function () {
  this.timeout(480_000);
  let dir;
  let env;
  let state;
  const kubectl = (context, ...args) => spawnSync(kubeTool('kubectl'), ['--context', context, ...args], { encoding: 'utf8', env, timeout: 60_000 });
  const json = (context, ...args) => {
    const r = kubectl(context, ...args, '-o', 'json');
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout);
  };

  before(async function () {
    if (!isRoot()) return this.skip();
    dir = mkdtempSync(join(tmpdir(), 'weft-e2e-kube-'));
    // The contexts go to the kubeconfig KUBECONFIG names, as with kubectl; here a scratch one.
    env = { ...process.env, KUBECONFIG: join(dir, 'kubeconfig') };
    const up = await weft(['lab', 'up', '--kubernetes', '--clusters', '2', '--nodes', '2', '--no-demo'], { env, timeout: 420_000 });
    assert.equal(up.code, 0, up.stderr);
    state = await weftJson(['lab', 'status']);
  });

  after(async function () {
    if (!dir) return;
    const down = await weft(['lab', 'down'], { env });
    rmSync(dir, { recursive: true, force: true });
    assert.equal(down.code, 0, down.stderr);
  });

  it('writes a context per cluster, and each reaches its own API server', () => {
    assert.deepEqual(Object.values(state.kubernetes).map((k) => k.context).sort(), ['weft-lab-c1', 'weft-lab-c2']);
    const contexts = execFileSync(kubeTool('kubectl'), ['config', 'get-contexts', '-o', 'name'], { encoding: 'utf8', env }).trim().split('\n').sort();
    assert.deepEqual(contexts, ['weft-lab-c1', 'weft-lab-c2']);
    assert.equal(json('weft-lab-c1', 'version').serverVersion.gitVersion, 'v1.37.2');
  });

  it('registers every node with its pod CIDR and address, Ready through the lab kubelet\'s heartbeats', () => {
    for (const c of state.clusters) {
      const nodes = json(`weft-lab-${c.name}`, 'get', 'nodes').items;
      assert.deepEqual(nodes.map((n) => [n.metadata.name, n.spec.podCIDR, n.status.addresses.find((a) => a.type === 'InternalIP').address]).sort(), c.nodes.map((n) => [n.name, n.podCidr, n.ip]).sort());
      for (const n of nodes) assert.equal(n.status.conditions.find((x) => x.type === 'Ready').status, 'True', n.metadata.name);
      // Renewed by the node itself (the Node authorizer lets a node hold only its own Lease).
      const leases = json(`weft-lab-${c.name}`, 'get', 'leases', '-n', 'kube-node-lease').items;
      assert.deepEqual(leases.map((l) => l.spec.holderIdentity).sort(), c.nodes.map((n) => n.name).sort());
    }
  });

  it('installs Weft with helm: the release, its CRDs, and the workloads the controllers act on', () => {
    for (const c of state.clusters) {
      const context = `weft-lab-${c.name}`;
      const helm = spawnSync(kubeTool('helm'), ['--kube-context', context, 'list', '-n', 'kube-system', '-o', 'json'], { encoding: 'utf8', env });
      assert.equal(helm.status, 0, helm.stderr);
      assert.deepEqual(JSON.parse(helm.stdout).map((r) => [r.name, r.status]), [['weft', 'deployed']]);
      assert.equal(kubectl(context, 'wait', '--for=condition=Established', 'crd/weftnetworkpolicies.weft.io', '--timeout=30s').status, 0);
      const config = JSON.parse(json(context, 'get', 'configmap', 'weft-agent-config', '-n', 'kube-system').data['agent.json']);
      assert.deepEqual([config.cluster, config.clusterId], [c.name, c.id]);
      // The DaemonSet controller sees both Ready nodes; the EndpointSlice controller serves the etcd Service.
      assert.equal(json(context, 'get', 'daemonset', 'weft-agent', '-n', 'kube-system').status.desiredNumberScheduled, 2);
      assert.equal(json(context, 'get', 'endpointslices', '-n', 'kube-system', '-l', 'kubernetes.io/service-name=weft-etcd').items.length, 1);
      assert.equal(json(context, 'get', 'secrets', '-n', 'kube-system').items.some((s) => s.metadata.name === 'weft-clustermesh-ca'), true, 'clustermesh on with two clusters');
    }
  });

  it('runs the chart\'s pods on the lab\'s nodes, Ready by their own probes: an agent on each node, etcd and its issuer, the clustermesh-apiserver', () => {
    for (const c of state.clusters) {
      const context = `weft-lab-${c.name}`;
      const pods = json(context, 'get', 'pods', '-n', 'kube-system').items;
      const ready = (p) => p.status.conditions?.some((x) => x.type === 'Ready' && x.status === 'True');
      const agents = pods.filter((p) => p.metadata.name.startsWith('weft-agent-'));
      assert.deepEqual(agents.map((p) => p.spec.nodeName).sort(), c.nodes.map((n) => n.name).sort());
      for (const p of pods) assert.ok(ready(p), `${c.name}: ${p.metadata.name} is not Ready: ${JSON.stringify(p.status.conditions)}`);
      // Host-network pods: their address is their node's, and the EndpointSlice controller publishes it.
      const etcd = pods.find((p) => p.metadata.name.startsWith('weft-etcd-'));
      assert.equal(etcd.status.podIP, c.nodes.find((n) => n.name === etcd.spec.nodeName).ip);
      const slice = json(context, 'get', 'endpointslices', '-n', 'kube-system', '-l', 'kubernetes.io/service-name=weft-etcd').items[0];
      assert.deepEqual(slice.endpoints.map((e) => e.addresses[0]), [etcd.status.podIP]);
      // The agents, from the chart's configuration, publish their nodes as WeftNodes (with their WireGuard keys).
      const weftNodes = json(context, 'get', 'weftnodes').items;
      assert.deepEqual(weftNodes.map((w) => [w.metadata.name, w.spec.podCidr]).sort(), c.nodes.map((n) => [n.name, n.podCidr]).sort());
      for (const w of weftNodes) assert.equal(w.status?.wireguard?.lanes?.length, 2, `${w.metadata.name}: ${JSON.stringify(w.status)}`);
    }
  });

  it('gives each node\'s host network the cluster\'s Services by ClusterIP: the kubernetes Service reaches the API server', async () => {
    for (const c of state.clusters) {
      const ca = `/var/run/weft/lab/${c.name}/kube/pki/ca.crt`;
      // TLS to 10.96.0.1 verified against the cluster CA (the serving certificate names the Service IP): 401, as anonymous.
      const code = `require('https').get({host:'10.96.0.1',port:443,path:'/readyz',ca:require('fs').readFileSync('${ca}'),timeout:5000},(r)=>{process.stdout.write(String(r.statusCode));process.exit()}).on('error',(e)=>{process.stdout.write('error '+e.message);process.exit()})`;
      let out = '';
      const deadline = Date.now() + 30_000;
      while (out !== '401' && Date.now() < deadline) {
        out = spawnSync('ip', ['netns', 'exec', `weft-${c.nodes[0].name}`, process.execPath, '-e', code], { encoding: 'utf8', timeout: 10_000 }).stdout;
        if (out !== '401') await new Promise((r) => setTimeout(r, 500));
      }
      assert.equal(out, '401', `${c.name}: ${out}`);
    }
  });

  it('connects the two clusters as a user does: weft clustermesh connect --wait rolls out both clustermesh-apiservers', async () => {
    const r = await weft(['clustermesh', 'connect', '--context', 'weft-lab-c1', '--destination-context', 'weft-lab-c2', '--wait', '--timeout', '180', '-o', 'json'], { env, timeout: 240_000 });
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout);
    assert.equal(result.rolledOut, true);
    assert.deepEqual(result.clusters.map((c) => [c.cluster, c.remote, c.change]), [['c1', 'c2', 'created'], ['c2', 'c1', 'created']]);
    for (const c of ['c1', 'c2']) {
      const pods = json(`weft-lab-${c}`, 'get', 'pods', '-n', 'kube-system', '-l', 'app.kubernetes.io/component=clustermesh-apiserver').items;
      assert.equal(pods.length, 1, `${c}: the old apiserver pod is gone, the new one runs`);
    }
  });

  it('removes all of it on lab down: processes, contexts, namespaces', async () => {
    const down = await weft(['lab', 'down'], { env });
    assert.equal(down.code, 0, down.stderr);
    assert.equal(spawnSync(kubeTool('kubectl'), ['config', 'get-contexts', '-o', 'name'], { encoding: 'utf8', env }).stdout.trim(), '');
    assert.deepEqual(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith('weft-')), []);
    const ours = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((pid) => {
      try {
        const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        return /kube-apiserver|kube-controller-manager|kube-scheduler|weft\.js\0lab\0(forward|kubelet)|\0agent\0--config\0\/etc\/weft\/|--name=weft-etcd|\0etcd-issuer\0/.test(argv);
      } catch {
        return false;
      }
    });
    assert.deepEqual(ours, [], 'no control-plane, kubelet, forwarder or pod process is left');
    const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').filter((l) => / \/(var\/)?run\/weft\//.test(l));
    assert.deepEqual(mounts, [], 'no mount of the lab is left (the nodes\' bpffs)');
  });
});
