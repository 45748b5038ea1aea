import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { EtcdProcess } from './etcd-process.js';
import { EtcdStartError } from './errors.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('EtcdProcess @etcd', function () {
  it('starts a healthy etcd on free loopback ports and removes everything on stop', async () => {
    const etcd = await EtcdProcess.start({ name: 'launcher-test' });
    assert.match(etcd.endpoint, /^127\.0\.0\.1:\d+$/);
    assert.equal(await etcd.healthy(), true);
    const pid = etcd.pid!;
    await etcd.stop();
    assert.equal(etcd.running, false);
    assert.equal(alive(pid), false);
    assert.equal(existsSync(etcd.dataDir), false);
  });

  it('never outlives its parent, even one killed with SIGKILL', async () => {
    const script = `
      const { EtcdProcess } = require(${JSON.stringify(require.resolve('./etcd-process.js'))});
      EtcdProcess.start({ name: 'orphan-test' }).then((e) => {
        process.stdout.write(String(e.dataDir) + '\\n');
        setInterval(() => {}, 1000);
      });`;
    const parent = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const dataDir = await new Promise<string>((resolve) => parent.stdout.once('data', (d: Buffer) => resolve(d.toString().trim())));
    const etcdPid = await findEtcd(dataDir);
    assert.ok(alive(etcdPid));
    parent.kill('SIGKILL');
    await until(() => !alive(etcdPid), 'etcd to stop after its parent died');
    spawn('rm', ['-rf', dataDir]);
  });

  it('explains why etcd did not start, and leaves nothing behind', async () => {
    const etcd = new EtcdProcess({ name: 'bad-flag', extraArgs: ['--no-such-flag'] });
    await assert.rejects(etcd.start(), (err: unknown) => {
      assert.ok(err instanceof EtcdStartError);
      assert.match(err.message, /Cannot start etcd "bad-flag": it exited with code \d+: .*no-such-flag/);
      return true;
    });
    assert.equal(existsSync(etcd.dataDir), false);
  });
});

async function findEtcd(dataDir: string): Promise<number> {
  const out = await new Promise<string>((resolve) => {
    const p = spawn('pgrep', ['-f', `etcd --name orphan-test --data-dir ${dataDir}`]);
    let s = '';
    p.stdout.on('data', (d: Buffer) => (s += d.toString()));
    p.on('exit', () => resolve(s));
  });
  // pgrep also matches the guard shell (its command line holds the same words); etcd is the newest.
  const pids = out.trim().split('\n').map(Number).filter(Boolean);
  assert.ok(pids.length > 0, 'etcd process found');
  return Math.max(...pids);
}
