import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cgroupHierarchies, containerdConfig, kubeletConfig, NODE_PATHS, nodeCgroupRoot, nodeRuntimePlan, type NodeRuntimeSpec } from './node-runtime.js';

const spec: NodeRuntimeSpec = {
  node: 'c1-node2',
  nodeIp: '10.99.1.12',
  root: '/var/run/weft/c1/c1-node2/root',
  kubeconfig: '/var/run/weft/lab/c1/kube/node-c1-node2.kubeconfig',
  clientCaFile: '/var/run/weft/lab/c1/kube/pki/ca.crt',
  images: [{ archive: '/cache/pause-1.0-abc.tar', name: 'localhost/weft/pause' }, { archive: '/cache/weft-0.1.0-def.tar', name: 'ghcr.io/weft-mesh/weft' }],
  sandboxImage: 'localhost/weft/pause:1.0',
  logDir: '/var/run/weft/c1/c1-node2',
  binDir: '/kube/bin',
};

describe('lab node runtime: containerd and kubelet of a lab node', () => {
  it('binds every node path from the node\'s root, /run/weft last (the lab\'s own state, node roots included, is under it)', () => {
    const plan = nodeRuntimePlan(spec, (p) => `content of ${p}`);
    assert.deepEqual(plan.binds.map(([, t]) => t), [...NODE_PATHS]);
    assert.equal(plan.binds.at(-1)![1], '/run/weft');
    for (const [source, target] of plan.binds) assert.equal(source, `${spec.root}${target}`);
    // kubelet.conf and the CA are read from the lab's state before the binds hide it, and written where a real node keeps them.
    assert.deepEqual(plan.files.map((f) => [f.path, f.content.slice(0, 11)]).slice(0, 2), [['/etc/kubernetes/kubelet.conf', 'content of '], ['/etc/kubernetes/pki/ca.crt', 'content of ']]);
    assert.ok(plan.files.every((f) => NODE_PATHS.some((p) => f.path.startsWith(`${p}/`))), 'every file lands in a path bound from the node\'s root');
  });

  it('imports each image under its repository and starts the daemons with the node\'s name and address', () => {
    const plan = nodeRuntimePlan(spec, () => '');
    assert.deepEqual(plan.imports.map((a) => a.slice(-4)), [['--base-name', 'localhost/weft/pause', '--local', '/cache/pause-1.0-abc.tar'], ['--base-name', 'ghcr.io/weft-mesh/weft', '--local', '/cache/weft-0.1.0-def.tar']]);
    assert.deepEqual(plan.imports[0]!.slice(0, 5), ['/kube/bin/ctr', '--address', '/run/containerd/containerd.sock', '--namespace', 'k8s.io']);
    assert.equal(plan.kubelet[0], '/kube/bin/kubelet');
    assert.deepEqual([plan.kubelet[plan.kubelet.indexOf('--hostname-override') + 1], plan.kubelet[plan.kubelet.indexOf('--node-ip') + 1]], ['c1-node2', '10.99.1.12']);
  });

  it('configures containerd for these machines: no CAP_SYS_RESOURCE, cgroupfs, the lab\'s sandbox image, no machine-wide sockets', () => {
    const toml = containerdConfig(spec);
    assert.match(toml, /^version = 3$/m);
    assert.match(toml, /restrict_oom_score_adj = true/);
    assert.match(toml, /SystemdCgroup = false/);
    assert.match(toml, /sandbox = "localhost\/weft\/pause:1\.0"/);
    assert.match(toml, /disabled_plugins = \[[^\]]*"io\.containerd\.nri\.v1\.nri"[^\]]*"io\.containerd\.internal\.v1\.opt"/);
    assert.match(toml, /use_internal_loopback = true/);
  });

  it('configures kubelet for these machines: cgroup v1 with cgroupfs under the node\'s own root, no swap check, webhook authorization', () => {
    const c = kubeletConfig(spec);
    assert.equal(c.failCgroupV1, false);
    assert.equal(c.failSwapOn, false);
    assert.equal(c.cgroupDriver, 'cgroupfs');
    assert.equal(c.cgroupRoot, '/weft-lab/c1-node2');
    assert.equal(nodeCgroupRoot('c2-node1'), '/weft-lab/c2-node1');
    assert.equal(c.address, '10.99.1.12');
    assert.deepEqual(c.authorization, { mode: 'Webhook' });
    assert.equal((c.authentication as { anonymous: { enabled: boolean } }).anonymous.enabled, false);
    assert.equal(c.readOnlyPort, 0);
  });

  it('finds the cgroup v1 hierarchies, or the one v2 hierarchy', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-cgroups-'));
    try {
      for (const h of ['cpu', 'memory', 'pids']) {
        mkdirSync(join(dir, 'v1', h), { recursive: true });
        writeFileSync(join(dir, 'v1', h, 'cgroup.procs'), '');
      }
      mkdirSync(join(dir, 'v1', 'not-a-hierarchy'));
      assert.deepEqual(cgroupHierarchies(join(dir, 'v1')).sort(), ['cpu', 'memory', 'pids'].map((h) => join(dir, 'v1', h)));
      mkdirSync(join(dir, 'v2'));
      writeFileSync(join(dir, 'v2', 'cgroup.controllers'), 'cpu memory');
      assert.deepEqual(cgroupHierarchies(join(dir, 'v2')), [join(dir, 'v2')]);
      assert.deepEqual(cgroupHierarchies(join(dir, 'none')), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
