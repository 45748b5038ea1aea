import assert from 'node:assert/strict';
import { checkRemotes } from './config.js';
import { checkRecord } from './validate.js';

const remote = { name: 'west', id: 2 };

describe('clustermesh validation', () => {
  it('rejects remote configurations with the reason', () => {
    assert.deepEqual(checkRemotes('east', 1, [{ name: 'west', id: 2 }, { name: 'south', id: 3 }]), []);
    const problems = checkRemotes('east', 1, [
      { name: 'zero', id: 0 },
      { name: 'self-id', id: 1 },
      { name: 'east', id: 4 },
      { name: 'Bad_Name', id: 5 },
      { name: 'dup', id: 6 },
      { name: 'dup', id: 7 },
      { name: 'same-id', id: 6 },
    ]).map((p) => `${p.remote}: ${p.reason}`);
    assert.deepEqual(problems, [
      'zero: cluster id 0 is out of range 1-255',
      "self-id: cluster id 1 is this cluster's own id",
      "east: name east is this cluster's own name",
      'Bad_Name: name "Bad_Name" is not a valid cluster name',
      'dup: name dup is configured twice',
      'same-id: cluster id 6 is already used by remote dup',
    ]);
  });

  it('accepts records a remote may send and rejects the rest', () => {
    const id = (2 << 16) | 300;
    assert.equal(checkRecord('identities', String(id), 'k8s:app=web;k8s:weft.io/cluster=west', remote), undefined);
    assert.match(checkRecord('identities', String((1 << 16) | 300), 'k8s:app=web;k8s:weft.io/cluster=west', remote)!, /outside cluster west's range \(cluster id 2, got 1\)/);
    assert.match(checkRecord('identities', String(id), 'k8s:app=web;k8s:weft.io/cluster=east', remote)!, /carries weft.io\/cluster=east, not west/);
    assert.match(checkRecord('identities', String(id), 'x'.repeat(20_000), remote)!, /exceeds 16384/);
    const svc = { namespace: 'd', name: 'web', selector: { app: 'web' }, ports: [{ protocol: 'TCP', port: 80, targetPort: 8080 }] };
    assert.equal(checkRecord('services', 'd.web', JSON.stringify(svc), remote), undefined);
    assert.match(checkRecord('services', 'd.other', JSON.stringify(svc), remote)!, /stored under d.other/);
    assert.match(checkRecord('services', 'd.web', JSON.stringify({ ...svc, ports: [{ protocol: 'TCP', port: 0, targetPort: 8080 }] }), remote)!, /ports\[0\]/);
    const ep = { ip: '10.102.1.5', identity: id, node: 'w1', nodeIp: '10.99.2.11', namespace: 'd', pod: 'p', labels: {} };
    assert.equal(checkRecord('endpoints', ep.ip, JSON.stringify(ep), remote), undefined);
    assert.match(checkRecord('endpoints', ep.ip, JSON.stringify({ ...ep, identity: 1 }), remote)!, /identity 1, not one of cluster west's .*remotes cannot send reserved identities/);
    assert.match(checkRecord('endpoints', ep.ip, JSON.stringify({ ...ep, identity: (1 << 16) | 300 }), remote)!, /identity 65836 is not an identity of cluster 2/);
    assert.match(checkRecord('endpoints', 'other', JSON.stringify(ep), remote)!, /stored under other/);
    const node = { name: 'w1', cluster: 'west', ip: '10.99.2.11', podCidr: '10.102.1.0/24', routing: 'vxlan' };
    assert.equal(checkRecord('nodes', 'w1', JSON.stringify(node), remote), undefined);
    assert.match(checkRecord('nodes', 'w2', JSON.stringify(node), remote)!, /node record w1 stored under w2/);
    assert.match(checkRecord('nodes', 'a/b', JSON.stringify(node), remote)!, /not a valid record key/);
  });
});
