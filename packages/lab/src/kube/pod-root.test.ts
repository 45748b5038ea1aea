import assert from 'node:assert/strict';
import { LabError } from '../errors.js';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { containerScript, resolveInRoot } from './pod-root.js';

describe('lab kubelet: a container\'s root (the script)', () => {
  it('builds an overlay root, binds each volume at its mountPath, and execs the command with only its environment', () => {
    const script = containerScript('/var/lib/weft-lab/n1/pods/uid-1/agent', [{ source: '/var/lib/weft-lab/n1/pods/uid-1/volumes/etcd-tls', target: '/etc/weft/etcd-tls', readOnly: true }], ['weft', 'agent', '--config', "/etc/weft/it's.json"], { WEFT_NODE_NAME: 'n1' });
    assert.match(script, /^mount -t overlay weft-pod -o lowerdir=\/,upperdir=\/var\/lib\/weft-lab\/n1\/pods\/uid-1\/agent\/layer\/upper,workdir=/m);
    assert.match(script, /^mount --bind '\/var\/lib\/weft-lab\/n1\/pods\/uid-1\/volumes\/etcd-tls' '\/var\/lib\/weft-lab\/n1\/pods\/uid-1\/agent\/root\/etc\/weft\/etcd-tls'$/m);
    assert.match(script, /^mount -o remount,bind,ro '\/var\/lib\/weft-lab\/n1\/pods\/uid-1\/agent\/root\/etc\/weft\/etcd-tls'$/m);
    assert.match(script, /exec chroot '[^']+' \/usr\/bin\/env -i 'WEFT_NODE_NAME=n1' 'weft' 'agent' '--config' '\/etc\/weft\/it'\\''s\.json'\n$/);
  });

  it('refuses a relative or climbing mountPath, and a pod directory the overlay options cannot carry', () => {
    assert.throws(() => containerScript('/p', [{ source: '/x', target: 'etc/weft' }], ['true'], {}), (e: Error) => e instanceof LabError && /mount target "etc\/weft" is not an absolute path/.test(e.message));
    assert.throws(() => containerScript('/p', [{ source: '/x', target: '/etc/../../x' }], ['true'], {}), /is not an absolute path/);
    assert.throws(() => containerScript('/p,upperdir=/', [], ['true'], {}), /pod directory "\/p,upperdir=\/" must be/);
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
