import assert from 'node:assert/strict';
import { LabError } from '../errors.js';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { containerScript, resolveInRoot } from './pod-root.js';

describe('lab kubelet: a container\'s root (the script)', () => {
  it('builds an overlay root, binds each volume at its mountPath, and execs the command with only its environment', () => {
    const script = containerScript({ dir: '/var/lib/weft-lab/n1/pods/uid-1/agent', mounts: [{ source: '/var/lib/weft-lab/n1/pods/uid-1/volumes/etcd-tls', target: '/etc/weft/etcd-tls', readOnly: true }], argv: ['weft', 'agent', '--config', "/etc/weft/it's.json"], env: { WEFT_NODE_NAME: 'n1' }, hostDev: true });
    assert.match(script, /^mount -t overlay weft-pod -o lowerdir=\/,upperdir=\/var\/lib\/weft-lab\/n1\/pods\/uid-1\/agent\/layer\/upper,workdir=/m);
    assert.match(script, /^mount --bind '\/var\/lib\/weft-lab\/n1\/pods\/uid-1\/volumes\/etcd-tls' '\/var\/lib\/weft-lab\/n1\/pods\/uid-1\/agent\/root\/etc\/weft\/etcd-tls'$/m);
    assert.match(script, /^mount -o remount,bind,ro '\/var\/lib\/weft-lab\/n1\/pods\/uid-1\/agent\/root\/etc\/weft\/etcd-tls'$/m);
    assert.match(script, /exec chroot '[^']+' \/usr\/bin\/env -i 'WEFT_NODE_NAME=n1' 'weft' 'agent' '--config' '\/etc\/weft\/it'\\''s\.json'\n$/);
  });

  it('gives a container that is not privileged its own /dev, and a privileged one the machine\'s', () => {
    const own = containerScript({ dir: '/p', mounts: [], argv: ['true'], env: {} });
    assert.match(own, /^mount -t tmpfs -o mode=755,nosuid weft-dev '\/p\/root\/dev'$/m);
    assert.match(own, /^mount --bind \/dev\/urandom '\/p\/root\/dev\/urandom'$/m);
    assert.doesNotMatch(own, /--rbind '\/dev'/);
    const host = containerScript({ dir: '/p', mounts: [], argv: ['true'], env: {}, hostDev: true });
    assert.match(host, /^mount --rbind '\/dev' '\/p\/root\/dev'$/m);
    assert.doesNotMatch(host, /weft-dev/);
  });

  it('refuses a relative or climbing mountPath, and a pod directory the overlay options cannot carry', () => {
    assert.throws(() => containerScript({ dir: '/p', mounts: [{ source: '/x', target: 'etc/weft' }], argv: ['true'], env: {} }), (e: Error) => e instanceof LabError && /mount target "etc\/weft" is not an absolute path/.test(e.message));
    assert.throws(() => containerScript({ dir: '/p', mounts: [{ source: '/x', target: '/etc/../../x' }], argv: ['true'], env: {} }), /is not an absolute path/);
    assert.throws(() => containerScript({ dir: '/p,upperdir=/', mounts: [], argv: ['true'], env: {} }), /pod directory "\/p,upperdir=\/" must be/);
  });

  it('resolves a mount target through the root\'s symbolic links, as /var/run/weft is /run/weft', () => {
    const d = mkdtempSync(join(tmpdir(), 'weft-resolve-'));
    try {
      mkdirSync(join(d, 'run'));
      symlinkSync(join(d, 'run'), join(d, 'varrun'));
      symlinkSync('../run', join(d, 'rel'));
      assert.equal(resolveInRoot(join(d, 'varrun', 'weft', 'agent.sock')), join(d, 'run', 'weft', 'agent.sock'));
      assert.equal(resolveInRoot(join(d, 'rel', 'x')), join(tmpdir(), 'run', 'x'));
      assert.equal(resolveInRoot('/host/opt/cni/bin'), '/host/opt/cni/bin', 'what the machine lacks stays as it is');
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
