import assert from 'node:assert/strict';
import { silentLogger } from '@weft/common';
import { Agent } from './agent.js';
import { cniArgsProblem, parseCniArgs, type CniArgs } from './cni-args.js';
import { validateAgentConfig } from './config.js';
import type { Datapath } from './datapath-port.js';
import { netnsName } from './endpoint-manager.js';
import { CniRequestError } from './errors.js';

const good: CniArgs = { containerId: 'abc', netnsPath: '/var/run/netns/p1', ifname: 'eth0', namespace: 'demo', pod: 'web' };

describe('CNI arguments in the agent', () => {
  it('takes only a named namespace whose name is safe for ip', () => {
    assert.equal(netnsName('/var/run/netns/weft-c1-abc'), 'weft-c1-abc');
    assert.equal(netnsName('/run/netns/cni-1234'), 'cni-1234');
    for (const bad of ['/var/run/netns/p1\nlink del eth0', '/var/run/netns/p1 up', '/var/run/netns/-n', '/var/run/netns/../../etc', '/var/run/netns/p1\0']) {
      assert.throws(() => netnsName(bad), (err: unknown) => err instanceof CniRequestError && err.cniCode === 4 && /^Invalid CNI_NETNS "/.test(err.message), JSON.stringify(bad));
    }
  });

  it('names the first bad field, with missing and invalid told apart', () => {
    assert.equal(cniArgsProblem('ADD', good), undefined);
    assert.equal(cniArgsProblem('DEL', { ...good, netnsPath: '', namespace: '', pod: '' }), undefined, 'DEL needs no namespace or pod');
    assert.match(cniArgsProblem('ADD', { ...good, ifname: 'eth0\nx' })!.message, /^Invalid CNI_IFNAME "eth0\\nx": must be letters/);
    assert.match(cniArgsProblem('CHECK', { ...good, netnsPath: undefined })!.message, /^Missing CNI_NETNS \(required for CHECK\)$/);
    assert.match(cniArgsProblem('ADD', { ...good, pod: 'a;b' })!.message, /^Invalid K8S_POD_NAME in CNI_ARGS "a;b": must be a Kubernetes object name/);
    assert.match(cniArgsProblem('ADD', { ...good, ifname: 'x'.repeat(16) })!.message, /longer than 15 bytes/);
    assert.match(cniArgsProblem('ADD', { ...good, ifname: 'eth\u00e901234567890' })!.message, /longer than 15 bytes/, 'bytes, not characters');
    assert.match(cniArgsProblem('ADD', { ...good, containerId: 42 as unknown as string })!.message, /\(a number, not a string\)/);
  });

  it('parses CNI_ARGS as KEY=VALUE pairs, refusing duplicates that would let one pair override another', () => {
    assert.deepEqual({ ...(parseCniArgs('IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;K8S_POD_NAME=web;') as { pairs: object }).pairs }, { IgnoreUnknown: '1', K8S_POD_NAMESPACE: 'demo', K8S_POD_NAME: 'web' });
    assert.match((parseCniArgs('K8S_POD_NAME=a;K8S_POD_NAME=b') as { problem: { message: string } }).problem.message, /K8S_POD_NAME is given twice/);
    assert.ok('problem' in parseCniArgs('__proto__'), 'a pair without = is refused');
  });

  it('refuses a hostile request on its API entry before any endpoint, namespace or datapath work', async () => {
    // A datapath that fails the test if touched; no etcd is reachable at this address, so nothing can be stored either.
    const untouchable = new Proxy({}, { get: (_t, p) => assert.fail(`the datapath was used (${String(p)})`) }) as Datapath;
    const config = validateAgentConfig({ cluster: 'c1', clusterId: 1, node: 'n1', etcd: ['127.0.0.1:9'], nodeIp: '10.99.1.11', podCidr: '10.101.1.0/24', bpfDir: '/nonexistent', stateDir: '/nonexistent', encryption: 'off' });
    const agent = new Agent(config, untouchable, silentLogger());
    try {
      const cases: Array<[string, Partial<CniArgs>, RegExp]> = [
        ['ADD', { ifname: 'eth0\nlink set dev lo down' }, /^Invalid CNI_IFNAME "eth0\\nlink set dev lo down"/],
        ['ADD', { netnsPath: '/var/run/netns/p1\nlink del eth0' }, /^Invalid CNI_NETNS/],
        ['DEL', { containerId: '../../x' }, /^Invalid CNI_CONTAINERID/],
        ['CHECK', { containerId: 'abc def' }, /^Invalid CNI_CONTAINERID/],
        ['ADD', { namespace: 'demo/Pod/other' }, /^Invalid K8S_POD_NAMESPACE in CNI_ARGS/],
        ['RUN', {}, /^Invalid CNI_COMMAND "RUN"/],
      ];
      for (const [command, over, message] of cases) {
        await assert.rejects(agent.cni(command, { ...good, ...over }), (err: unknown) => {
          assert.ok(err instanceof CniRequestError, `${command} ${JSON.stringify(over)}: ${String(err)}`);
          assert.equal(err.cniCode, 4);
          assert.match(err.message, message);
          return true;
        });
      }
      await assert.rejects(agent.cni('ADD', undefined as unknown as CniArgs), (err: unknown) => err instanceof CniRequestError && /^Missing CNI_CONTAINERID/.test(err.message));
    } finally {
      (agent as unknown as { kv: { close(): void } }).kv.close();
    }
  });
});
