import assert from 'node:assert/strict';
import { InvalidClusterIdError, IdentityOutOfRangeError } from './errors.js';
import { clusterIdOf, identityRange, inCluster, localIdOf, makeIdentity, parseIdentity, ReservedIdentity, reservedName, validateClusterId } from './numeric.js';

describe('numeric identities', () => {
  it('puts the cluster id in bits 16-23', () => {
    const id = makeIdentity(3, 300);
    assert.equal(id, (3 << 16) | 300);
    assert.equal(clusterIdOf(id), 3);
    assert.equal(localIdOf(id), 300);
    assert.ok(id <= 0xffffff, 'fits a VXLAN VNI');
    assert.deepEqual(identityRange(255), { clusterId: 255, first: (255 << 16) | 256, last: 0xffffff });
  });

  it('never lets two clusters share an id', () => {
    const a = identityRange(1);
    const b = identityRange(2);
    assert.ok(a.last < b.first);
    assert.equal(inCluster(makeIdentity(1, 256), 2), false);
  });

  it('rejects cluster id 0, 256 and non-integers', () => {
    for (const bad of [0, 256, -1, 1.5, '3', undefined]) {
      assert.throws(() => validateClusterId(bad, 'allocate identity'), (err: unknown) => {
        assert.ok(err instanceof InvalidClusterIdError);
        assert.equal(err.message, `Cannot allocate identity: cluster id ${JSON.stringify(bad)} is out of range 1-255`);
        return true;
      });
    }
  });

  it('rejects local ids in the reserved range or beyond 16 bits', () => {
    assert.throws(() => makeIdentity(1, 255), IdentityOutOfRangeError);
    assert.throws(() => makeIdentity(1, 65536), IdentityOutOfRangeError);
    assert.throws(() => identityRange(1, 300, 200), IdentityOutOfRangeError);
  });

  it('names the reserved identities', () => {
    assert.equal(ReservedIdentity.host, 1);
    assert.equal(ReservedIdentity.world, 2);
    assert.equal(ReservedIdentity['remote-node'], 6);
    assert.equal(reservedName(7), 'kube-apiserver');
    assert.equal(reservedName(200), undefined);
  });

  it('parses only canonical decimal 24-bit ids', () => {
    assert.equal(parseIdentity('196864'), 196864);
    for (const bad of ['', '0', '007', '1e5', '16777216', '12a', ' 5']) assert.equal(parseIdentity(bad), undefined, bad);
  });
});
