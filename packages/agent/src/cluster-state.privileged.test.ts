/**
 * Routes to pod CIDRs against the real kernel (root): a node record, remote or local, can never
 * make the agent replace or cut into the underlay's route. The agent's routes go into a network
 * namespace the test creates (wtcs-<random>, removed after, pass or fail); the machine's own
 * routes are never touched. etcd is a real one on loopback.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { silentLogger } from '@weft/common';
import { KvClient, until, useTestEtcd } from '@weft/kvstore';
import { Ip } from '@weft/net';
import { ClusterState } from './cluster-state.js';
import { validateAgentConfig } from './config.js';
import { MemoryDatapath } from './memory-datapath.js';

const IS_ROOT = process.getuid?.() === 0;

describe('ClusterState routes on the kernel (root) @etcd', function () {
  this.timeout(30_000);
  const t = useTestEtcd('cluster-state-routes');
  const ns = `wtcs-${randomBytes(4).toString('hex')}`;
  let state: ClusterState | undefined;
  const ipIn = (...args: string[]): string => execFileSync('ip', ['-n', ns, ...args], { encoding: 'utf8' });
  const routes = (): Array<{ dst: string; gateway?: string; dev?: string; protocol?: string }> => JSON.parse(ipIn('-j', '-4', 'route', 'show'));
  const put = (key: string, value: unknown): Promise<unknown> => t.kv.put(key, JSON.stringify(value));

  before(function () {
    if (!IS_ROOT) return this.skip();
    execFileSync('ip', ['netns', 'add', ns]);
    ipIn('link', 'set', 'lo', 'up');
    // The underlay: a veth pair inside the namespace (no dummy driver in this kernel).
    ipIn('link', 'add', 'ul0', 'type', 'veth', 'peer', 'name', 'ul1');
    ipIn('addr', 'add', '10.99.1.11/16', 'dev', 'ul0');
    ipIn('link', 'set', 'ul1', 'up');
    ipIn('link', 'set', 'ul0', 'up');
  });
  after(async () => {
    await state?.stop();
    if (IS_ROOT) execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  });

  it('never replaces or cuts into the underlay route, whatever pod CIDR a node record claims', async () => {
    await put('weft/state/v1/nodes/e1', { name: 'e1', cluster: 'east', ip: '10.99.1.11', podCidr: '10.101.1.0/24', routing: 'direct' });
    // Two remote records, the underlay itself and a slice of it, and a legitimate one (w1): all
    // in the first sync, so once w1's route is in, the others were considered.
    await put('weft/meshclusters/v1/west', { id: 2 });
    await put('weft/mesh/v1/west/nodes/w1', { name: 'w1', cluster: 'west', ip: '10.99.2.11', podCidr: '10.102.1.0/24', routing: 'direct' });
    await put('weft/mesh/v1/west/nodes/w2', { name: 'w2', cluster: 'west', ip: '10.99.2.12', podCidr: '10.99.0.0/16', routing: 'direct' });
    await put('weft/mesh/v1/west/nodes/w3', { name: 'w3', cluster: 'west', ip: '10.99.2.13', podCidr: '10.99.255.0/24', routing: 'direct' });
    // Underlay discovered from the namespace (the address holding nodeIp), as an agent does.
    const config = validateAgentConfig({ cluster: 'east', clusterId: 1, node: 'e1', etcd: [t.etcd.endpoint], nodeIp: '10.99.1.11', podCidr: '10.101.1.0/24', bpfDir: '/nonexistent', routing: 'direct', encryption: 'off' });
    state = new ClusterState(config, new KvClient({ endpoints: [t.etcd.endpoint] }), new MemoryDatapath(), () => [], silentLogger(), undefined, { ip: new Ip(ns) });
    await state.start();
    await until(() => routes().some((r) => r.dst === '10.102.1.0/24' && r.gateway === '10.99.2.11'), "the route to w1's pods");
    const underlayIntact = (): void => {
      const underlay = routes().filter((r) => r.dst === '10.99.0.0/16');
      assert.deepEqual(underlay.map((r) => ({ dev: r.dev, protocol: r.protocol, gateway: r.gateway })), [{ dev: 'ul0', protocol: 'kernel', gateway: undefined }], JSON.stringify(routes()));
      assert.equal(routes().some((r) => r.dst === '10.99.255.0/24'), false);
    };
    underlayIntact();
    assert.match(state.refused.get('weft/mesh/v1/west/nodes/w2')!, /pod CIDR 10\.99\.0\.0\/16 contains its own IP/);
    assert.match(state.refused.get('weft/mesh/v1/west/nodes/w3')!, /overlaps the underlay 10\.99\.0\.0\/16/);
    // A local record gone wrong is stopped at the route too (then a legitimate local node, last).
    await put('weft/state/v1/nodes/e2', { name: 'e2', cluster: 'east', ip: '10.99.1.12', podCidr: '10.99.0.0/16', routing: 'direct' });
    await put('weft/state/v1/nodes/e3', { name: 'e3', cluster: 'east', ip: '10.99.1.13', podCidr: '10.101.3.0/24', routing: 'direct' });
    await until(() => routes().some((r) => r.dst === '10.101.3.0/24' && r.gateway === '10.99.1.13'), "the route to e3's pods");
    underlayIntact();
    assert.match(state.refused.get('route/east/e2')!, /no route to pod CIDR 10\.99\.0\.0\/16: it overlaps the underlay 10\.99\.0\.0\/16/);
  });
});
