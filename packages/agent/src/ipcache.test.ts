import assert from 'node:assert/strict';
import type { IpcacheUpsert } from './datapath-port.js';
import { Ipcache } from './ipcache.js';

const e = (cidr: string, identity: number, extra: Partial<IpcacheUpsert> = {}): IpcacheUpsert => ({ cidr, identity, flags: 0, clusterId: 1, ...extra });

describe('Ipcache', () => {
  it('lets the source of highest precedence win a prefix, and local state beat any remote claim', () => {
    const c = new Ipcache();
    c.set('remote-endpoint', '10.101.1.5/32', e('10.101.1.5/32', (2 << 16) | 300, { clusterId: 2, tunnelIp: '10.99.2.11' }));
    assert.equal(c.get('10.101.1.5/32')?.identity, (2 << 16) | 300);
    c.set('cluster-endpoint', '10.101.1.5/32', e('10.101.1.5/32', 65_800, { tunnelIp: '10.99.1.12' }));
    c.set('local-endpoint', '10.101.1.5/32', e('10.101.1.5/32', 65_801, { flags: 1 }));
    assert.equal(c.get('10.101.1.5/32')?.identity, 65_801, 'this node\'s own endpoint first');
    assert.deepEqual([...c.shadowed()], [['10.101.1.5/32', 'a remote entry for 10.101.1.5/32 would replace a local one (local-endpoint)']]);
    c.set('local-endpoint', '10.101.1.5/32', undefined);
    assert.equal(c.get('10.101.1.5/32')?.identity, 65_800, 'then the cluster\'s record');
    c.set('cluster-endpoint', '10.101.1.5/32', undefined);
    assert.equal(c.get('10.101.1.5/32')?.clusterId, 2, 'the remote one only when nothing local claims it');
    assert.equal(c.shadowed().size, 0);
    // A node's address beats a pod record claiming it; a policy CIDR beats a remote node at the same prefix.
    c.set('cluster-endpoint', '10.99.1.11/32', e('10.99.1.11/32', 65_900));
    c.set('node', '10.99.1.11/32', e('10.99.1.11/32', 6, { flags: 2 }));
    assert.equal(c.get('10.99.1.11/32')?.identity, 6);
    c.set('remote-node', '8.8.8.0/24', e('8.8.8.0/24', 6, { clusterId: 2 }));
    c.set('policy-cidr', '8.8.8.0/24', e('8.8.8.0/24', 0x100, { clusterId: 0 }));
    assert.equal(c.get('8.8.8.0/24')?.identity, 0x100);
  });

  it('reports only the prefixes whose claims changed, once', () => {
    const c = new Ipcache();
    c.replace('cluster-endpoint', [e('10.0.0.1/32', 1000), e('10.0.0.2/32', 1001)]);
    assert.deepEqual(c.takeChanges().map((x) => x.cidr).sort(), ['10.0.0.1/32', '10.0.0.2/32']);
    assert.deepEqual(c.takeChanges(), []);
    c.replace('cluster-endpoint', [e('10.0.0.1/32', 1000), e('10.0.0.3/32', 1002)]); // .2 gone, .3 new, .1 unchanged
    assert.deepEqual(c.takeChanges().sort((a, b) => (a.cidr < b.cidr ? -1 : 1)), [
      { cidr: '10.0.0.2/32', entry: undefined },
      { cidr: '10.0.0.3/32', entry: e('10.0.0.3/32', 1002) },
    ]);
    c.set('cluster-endpoint', '10.0.0.1/32', e('10.0.0.1/32', 1000)); // the same again: no change
    assert.deepEqual(c.takeChanges(), []);
    c.set('remote-endpoint', '10.0.0.1/32', e('10.0.0.1/32', (2 << 16) | 5, { clusterId: 2 })); // a loser: its prefix is looked at, the winner stays
    assert.deepEqual(c.takeChanges(), [{ cidr: '10.0.0.1/32', entry: e('10.0.0.1/32', 1000) }]);
    assert.equal(c.size, 2);
    assert.deepEqual(c.entries().map((x) => x.identity).sort(), [1000, 1002]);
    assert.throws(() => c.set('node', '10.0.0.9/32', e('10.0.0.8/32', 6)), /set under 10.0.0.9\/32/);
  });
});
