import assert from 'node:assert/strict';
import { ETCD_STALE_MS, localAddress, meshHealth } from './health.js';

describe('clustermesh-apiserver health', () => {
  const at = 1_000_000;
  const state = { now: at, etcdOkAt: at - 1500, etcdError: undefined, listen: '0.0.0.0:32379', servingTo: ['west'] };

  it('is ready while etcd answered within ETCD_STALE_MS, whatever the remotes do', () => {
    assert.deepEqual(meshHealth(state), {
      ready: true,
      checks: [
        { name: 'etcd', ok: true, detail: 'answered 1.5s ago' },
        { name: 'serving', ok: true, detail: 'gRPC with mutual TLS on 0.0.0.0:32379, streaming to west' },
      ],
    });
    assert.equal(meshHealth({ ...state, etcdOkAt: at - ETCD_STALE_MS }).ready, true);
  });

  it('is not ready once etcd has not answered for longer, with the last error', () => {
    const r = meshHealth({ ...state, etcdOkAt: at - ETCD_STALE_MS - 2000, etcdError: 'etcd at 10.96.0.20:9379 is unavailable' });
    assert.equal(r.ready, false);
    assert.deepEqual(r.checks[0], { name: 'etcd', ok: false, detail: 'no answer for 12s: etcd at 10.96.0.20:9379 is unavailable' });
  });

  it('dials a wildcard listen address on loopback', () => {
    assert.equal(localAddress('0.0.0.0:32379'), '127.0.0.1:32379');
    assert.equal(localAddress(':32379'), '127.0.0.1:32379');
    assert.equal(localAddress('[::]:32379'), '[::1]:32379');
    assert.equal(localAddress('10.99.1.2:32379'), '10.99.1.2:32379');
    assert.equal(localAddress('[fd00::2]:32379'), '[fd00::2]:32379');
  });
});
