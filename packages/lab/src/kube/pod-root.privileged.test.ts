import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { netns } from '@weft/net';
import { runInRoot, startContainer } from './pod-root.js';

describe('lab kubelet: a container\'s root (root, real mounts)', function () {
  this.timeout(30_000);
  let dir: string;
  const ns = `wtpod-${randomBytes(3).toString('hex')}`;

  before(async function () {
    if (process.getuid?.() !== 0) return this.skip();
    dir = mkdtempSync(join(tmpdir(), 'weft-podroot-'));
    await netns.add(ns);
  });
  after(async () => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    await netns.delete(ns);
  });

  const run = (name: string, argv: string[], mounts: Parameters<typeof startContainer>[0]['mounts'], netnsName?: string): Promise<{ code: number | null; log: string }> => {
    const log = join(dir, `${name}.log`);
    const child = startContainer({ dir: join(dir, name), argv, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', WEFT_TEST: name }, mounts, log, ...(netnsName ? { netns: netnsName } : {}) });
    return new Promise((resolve) => child.on('exit', (code) => resolve({ code, log: readFileSync(log, 'utf8') })));
  };

  it('shows each volume at its mountPath, creates nothing on the machine, and gives only the pod\'s environment', async () => {
    const volume = join(dir, 'volumes', 'etcd-tls');
    mkdirSync(volume, { recursive: true });
    writeFileSync(join(volume, 'ca.crt'), 'the CA\n');
    const where = `/etc/weft-podroot-${randomBytes(3).toString('hex')}/etcd-tls`;
    const r = await run('reader', ['sh', '-c', `cat ${where}/ca.crt; echo "env: $WEFT_TEST $HOME"; touch ${where}/new 2>/dev/null && echo writable || echo read-only; mkdir -p /host/opt/cni/bin && echo made-host`], [{ source: volume, target: where, readOnly: true }]);
    assert.equal(r.code, 0, r.log);
    assert.equal(r.log, 'the CA\nenv: reader \nread-only\nmade-host\n');
    assert.equal(existsSync(where.split('/').slice(0, 3).join('/')), false, 'nothing created under /etc on the machine');
    assert.equal(existsSync('/host'), false, 'nor /host');
  });

  it('runs in the pod\'s network namespace when given one', async () => {
    const r = await run('net', ['ip', '-o', 'link'], [], ns);
    assert.equal(r.code, 0, r.log);
    assert.deepEqual(r.log.trim().split('\n').map((l) => l.split(': ')[1]), ['lo']);
  });

  it('gives the container its own /dev: its termination message lands in the file bound there, not in the machine\'s /dev', async () => {
    const message = join(dir, 'termination-log');
    writeFileSync(message, '');
    const r = await run('dev', ['sh', '-c', 'echo done > /dev/termination-log; head -c 4 /dev/urandom | wc -c; echo x > /dev/null; ls /dev | tr "\\n" " "'], [{ source: message, target: '/dev/termination-log' }]);
    assert.equal(r.code, 0, r.log);
    assert.equal(readFileSync(message, 'utf8'), 'done\n');
    assert.equal(existsSync('/dev/termination-log'), false);
    assert.match(r.log, /^4\n/);
    assert.equal(r.log.split('\n')[1], 'fd full null random shm stderr stdin stdout termination-log tty urandom zero ');
  });

  it('runs a short process with input on its stdin and gives back what it printed and its code', async () => {
    const r = await runInRoot({ dir: join(dir, 'once'), argv: ['sh', '-c', 'tr a-z A-Z; echo oops >&2; exit 3'], env: { PATH: '/usr/bin:/bin' }, mounts: [], input: 'hello\n', timeoutMs: 10_000 });
    assert.deepEqual(r, { code: 3, stdout: 'HELLO\n', stderr: 'oops\n' });
  });
});
