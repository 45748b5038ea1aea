import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlPlane, ControlPlaneError } from './control-plane.js';
import { KUBE_VERSION, kubeTool, kubeToolsReady } from './tools.js';

const alive = (pid: number | undefined): boolean => {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('Kubernetes control plane @etcd (real etcd 3.6, kube-apiserver, controller-manager, scheduler)', function () {
  this.timeout(120_000);
  let scratch: string;
  // The components may still be building beside the tests before these (hack/install.sh --kube-in-background).
  before(async function () {
    this.timeout(45 * 60_000);
    await kubeToolsReady();
  });
  before(() => {
    scratch = mkdtempSync(join(tmpdir(), 'weft-cp-'));
  });
  after(() => rmSync(scratch, { recursive: true, force: true }));

  it('serves the API with RBAC and the Node authorizer, runs the controllers, and stops without a trace', async () => {
    const dir = join(scratch, 'ok');
    const cp = await ControlPlane.start({ cluster: 'east', dir, controllers: true });
    const pids = (['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler'] as const).map((c) => cp.pid(c));
    try {
      const kubectl = (...args: string[]) => spawnSync(kubeTool('kubectl'), ['--kubeconfig', cp.kubeconfig, ...args], { encoding: 'utf8' });
      const version = JSON.parse(kubectl('version', '-o', 'json').stdout) as { serverVersion: { gitVersion: string } };
      assert.equal(version.serverVersion.gitVersion, KUBE_VERSION);
      assert.equal(kubectl('config', 'current-context').stdout.trim(), 'east');
      const modes = spawnSync('cat', [`/proc/${cp.pid('kube-apiserver')}/cmdline`], { encoding: 'utf8' }).stdout.split('\0');
      assert.equal(modes[modes.indexOf('--authorization-mode') + 1], 'Node,RBAC');
      // The admin is system:masters; a node's credential is held to its own node by the Node authorizer.
      assert.equal(kubectl('auth', 'can-i', '*', '*').stdout.trim(), 'yes');
      assert.match(kubectl('auth', 'can-i', 'list', 'secrets', '--as', 'system:node:n1', '--as-group', 'system:nodes').stdout, /^no\b/);
      // The controller-manager runs: it creates every namespace's default ServiceAccount.
      const deadline = Date.now() + 60_000;
      while (kubectl('get', 'serviceaccount', 'default', '-n', 'default').status !== 0) {
        assert.ok(Date.now() < deadline, 'no default ServiceAccount: the controller-manager does not run');
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.ok(pids.every(alive));
    } finally {
      await cp.stop();
    }
    assert.deepEqual(pids.filter(alive), [], 'every process stopped');
    assert.equal(existsSync(dir), false, 'state removed');
  });

  it('reports a component that exits while starting, with its log, and leaves nothing running', async () => {
    const dir = join(scratch, 'bad');
    // Its port is taken: the API server exits at once.
    const taken = createServer().listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const err = await ControlPlane.start({ dir, ports: { apiserver: (taken.address() as AddressInfo).port } }).then(() => undefined, (e: unknown) => e);
    taken.close();
    assert.ok(err instanceof ControlPlaneError, String(err));
    assert.equal(err.code, 'WEFT_ERR_KUBE_CONTROL_PLANE');
    assert.match(err.message, /^kube-apiserver exited \(1\) while starting: .*address already in use/s);
    assert.equal(existsSync(dir), false);
  });
});
