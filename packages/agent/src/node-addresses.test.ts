import assert from 'node:assert/strict';
import { NODE_ADDR_F_ENCRYPTED_ONLY } from '@weft/datapath';
import { nodeAddresses, type NodeAddressInput } from './node-addresses.js';
import { parseClusterInfo } from '@weft/schema';

const node = (cluster: string, clusterId: number, name: string, ip: string, podCidr: string): NodeAddressInput => ({ cluster, clusterId, record: { name, cluster, ip, podCidr, routing: 'vxlan' } });
const nodes = [node('c1', 1, 'n1', '10.99.1.11', '10.101.1.0/24'), node('c1', 1, 'n2', '10.99.1.12', '10.101.2.0/24'), node('c2', 2, 'm1', '10.99.2.11', '10.102.1.0/24')];
const ENC = NODE_ADDR_F_ENCRYPTED_ONLY;

describe('node addresses (who may send tunnel packets)', () => {
  it('without encryption: every other node by its node IP, with its cluster, clear traffic accepted', () => {
    const { entries, conflicts } = nodeAddresses(nodes, { me: 'c1/n1', encryption: 'off', strict: true, encrypted: new Set() });
    assert.deepEqual(conflicts, []);
    assert.deepEqual(entries, [
      { addr: '10.99.1.12', nodeIp: '10.99.1.12', clusterId: 1, flags: 0 },
      { addr: '10.99.2.11', nodeIp: '10.99.2.11', clusterId: 2, flags: 0 },
    ]);
  });

  it('with encryption: the router IP too (clear refused), and the node IP refused in the clear for peers and under strict mode', () => {
    const loose = nodeAddresses(nodes, { me: 'c1/n1', encryption: 'wireguard', strict: false, encrypted: new Set(['c1/n2']) });
    assert.deepEqual(loose.entries, [
      { addr: '10.99.1.12', nodeIp: '10.99.1.12', routerIp: '10.101.2.1', clusterId: 1, flags: ENC },
      { addr: '10.101.2.1', nodeIp: '10.99.1.12', routerIp: '10.101.2.1', clusterId: 1, flags: ENC },
      { addr: '10.99.2.11', nodeIp: '10.99.2.11', routerIp: '10.102.1.1', clusterId: 2, flags: 0 },
      { addr: '10.102.1.1', nodeIp: '10.99.2.11', routerIp: '10.102.1.1', clusterId: 2, flags: ENC },
    ]);
    const strict = nodeAddresses(nodes, { me: 'c1/n1', encryption: 'ipsec', strict: true, encrypted: new Set() });
    assert.ok(strict.entries.every((e) => e.flags === ENC), 'strict: no node may send tunnel packets in the clear');
  });

  it('leaves out an address two nodes claim, this node\'s included, and says who claims it', () => {
    const liar = node('c2', 2, 'm2', '10.99.1.11', '10.102.2.0/24'); // claims n1's (this node's) IP
    const twin = node('c2', 2, 'm3', '10.99.2.11', '10.102.3.0/24'); // claims m1's IP
    const { entries, conflicts } = nodeAddresses([...nodes, liar, twin], { me: 'c1/n1', encryption: 'off', strict: false, encrypted: new Set() });
    assert.deepEqual(entries.map((e) => e.addr), ['10.99.1.12']);
    assert.deepEqual(conflicts, [
      { addr: '10.99.1.11', nodes: ['c1/n1', 'c2/m2'] },
      { addr: '10.99.2.11', nodes: ['c2/m1', 'c2/m3'] },
    ]);
  });

  it('reads a remote cluster id from its listing (MESH_CLUSTERS_PREFIX): 1-255 and not our own', () => {
    assert.equal(parseClusterInfo(Buffer.from('{"id":2}'), 1), 2);
    assert.match(String(parseClusterInfo(Buffer.from('{"id":1}'), 1)), /this cluster's own/);
    assert.match(String(parseClusterInfo(Buffer.from('{"id":256}'), 1)), /not 1-255/);
    assert.match(String(parseClusterInfo(Buffer.from('{"id":"2"}'), 1)), /not 1-255/);
    assert.equal(parseClusterInfo(Buffer.from('nope'), 1), 'not JSON');
    assert.match(String(parseClusterInfo(Buffer.from('null'), 1)), /not 1-255/);
  });
});
