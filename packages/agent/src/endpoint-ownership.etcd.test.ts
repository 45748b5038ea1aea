import assert from 'node:assert/strict';
import { silentLogger } from '@weft/common';
import { useTestEtcd, until } from '@weft/kvstore';
import { ClusterState } from './cluster-state.js';
import { validateAgentConfig } from './config.js';
import type { Datapath, IpcacheUpsert } from './datapath-port.js';

/**
 * ClusterState on a real etcd: which endpoint records reach the ipcache. A node can publish
 * anything under its own prefix; only what lies inside its podCidr, under a node that exists,
 * with nobody else claiming it, is programmed. The datapath records what it is given.
 */
describe('ClusterState: endpoint ownership @etcd', function () {
  this.timeout(30_000);
  const t = useTestEtcd('cluster-state');
  let state: ClusterState | undefined;
  let ipcache: readonly IpcacheUpsert[] = [];
  const datapath = { syncIpcache: async (e: readonly IpcacheUpsert[]) => ((ipcache = e), { added: e.length, updated: 0, removed: 0 }) } as unknown as Datapath;
  const config = validateAgentConfig({ cluster: 'c1', clusterId: 1, node: 'n1', etcd: ['x:1'], nodeIp: '10.99.1.11', podCidr: '10.101.1.0/24', routing: 'vxlan', encryption: 'off', bpfDir: '/nonexistent' });
  // Keys spelled out (not state.ts's helpers): this is the layout other components rely on.
  const nodeKey = (name: string): string => `weft/state/v1/nodes/${name}`;
  const endpointKey = (node: string, ip: string): string => `weft/state/v1/endpoints/${node}/${ip}`;
  const node = (name: string, ip: string, podCidr: string) => t.kv.put(nodeKey(name), JSON.stringify({ name, cluster: 'c1', ip, podCidr, routing: 'vxlan' }));
  const endpoint = (under: string, ip: string, fields: Record<string, unknown> = {}) =>
    t.kv.put(endpointKey(under, ip), JSON.stringify({ ip, identity: 65_800, node: under, nodeIp: `10.99.1.${10 + Number(under.replace(/\D/g, '') || 9)}`, namespace: 'd', pod: `p-${ip}`, labels: {}, ...fields }));
  const programmed = (ip: string): IpcacheUpsert | undefined => ipcache.find((e) => e.cidr === `${ip}/32`);

  afterEach(async () => {
    await state?.stop();
    state = undefined;
  });

  it('programs only endpoints inside their own node\'s podCidr, and reports the others with why', async () => {
    await node('n1', '10.99.1.11', '10.101.1.0/24');
    await node('n2', '10.99.1.12', '10.101.2.0/24');
    await endpoint('n1', '10.101.1.5');
    await endpoint('n2', '10.101.2.7');
    // n2 claims an address of n1's pod CIDR (say, to take over its identity in the ipcache).
    await endpoint('n2', '10.101.1.6');
    // A node that does not exist; a record naming another node than its key; a wrong node address.
    await endpoint('ghost', '10.101.9.9', { nodeIp: '10.99.1.19' });
    await endpoint('n2', '10.101.2.8', { node: 'n1', nodeIp: '10.99.1.11' });
    await endpoint('n2', '10.101.2.9', { nodeIp: '10.99.1.66' });
    state = new ClusterState(config, t.kv, datapath, () => [], silentLogger());
    await state.start();
    await until(() => programmed('10.101.2.7') !== undefined, 'the ipcache sync');
    assert.equal(programmed('10.101.1.5')?.identity, 65_800);
    for (const ip of ['10.101.1.6', '10.101.9.9', '10.101.2.8', '10.101.2.9']) assert.equal(programmed(ip), undefined, `${ip} must not be programmed`);
    assert.deepEqual([...state.endpoints.keys()].sort(), ['10.101.1.5', '10.101.2.7']);
    const invalid = Object.fromEntries(state.invalid);
    assert.equal(invalid['weft/state/v1/endpoints/n2/10.101.1.6'], 'ip 10.101.1.6 is outside podCidr 10.101.2.0/24 of node n2');
    assert.equal(invalid['weft/state/v1/endpoints/ghost/10.101.9.9'], 'node ghost has no node record');
    assert.equal(invalid['weft/state/v1/endpoints/n2/10.101.2.8'], 'record names node "n1" but is published under node n2');
    assert.equal(invalid['weft/state/v1/endpoints/n2/10.101.2.9'], 'nodeIp 10.99.1.66 is not the address 10.99.1.12 of node n2');

    // A node record arriving after its endpoints makes them count; going away takes them along.
    await node('ghost', '10.99.1.19', '10.101.9.0/24');
    await until(() => programmed('10.101.9.9') !== undefined, 'the late node\'s endpoint to be programmed');
    assert.equal(state.invalid.has('weft/state/v1/endpoints/ghost/10.101.9.9'), false);
    await t.kv.delete(nodeKey('ghost'));
    await until(() => programmed('10.101.9.9') === undefined, 'the endpoint to go with its node');

    // Two nodes whose pod CIDRs overlap both claim one address: neither is believed.
    await node('n3', '10.99.1.13', '10.101.2.0/24');
    await endpoint('n3', '10.101.2.7');
    await until(() => programmed('10.101.2.7') === undefined, 'the contested address to leave the ipcache');
    assert.match(state.invalid.get('weft/state/v1/endpoints/n2/10.101.2.7') ?? '', /claimed by nodes n2, n3/);
    await t.kv.delete(endpointKey('n3', '10.101.2.7'));
    await until(() => programmed('10.101.2.7') !== undefined, 'the address to come back once only n2 claims it');
    assert.equal(state.invalid.has('weft/state/v1/endpoints/n2/10.101.2.7'), false);
  });

  it('reports a key that is not endpoints/<node>/<ip> (the layout before per-node keys) and programs nothing for it', async () => {
    await t.kv.put('weft/state/v1/endpoints/10.101.1.77', JSON.stringify({ ip: '10.101.1.77', identity: 65_800, node: 'n1', nodeIp: '10.99.1.11', namespace: 'd', pod: 'old', labels: {} }));
    state = new ClusterState(config, t.kv, datapath, () => [], silentLogger());
    await state.start();
    await until(() => programmed('10.101.1.5') !== undefined, 'the ipcache sync');
    assert.equal(programmed('10.101.1.77'), undefined);
    assert.equal(state.invalid.get('weft/state/v1/endpoints/10.101.1.77'), 'key is not endpoints/<node>/<ip>');
  });
});
