import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { netns } from '@weft/net';
import { CniPluginError, NodeCni, type CniAttachment } from './cni.js';

describe('lab kubelet: CNI plugins run as a runtime runs them (root, real mounts)', function () {
  this.timeout(30_000);
  let root: string;
  const ns = `wtcni-${randomBytes(3).toString('hex')}`;
  const attachment: CniAttachment = { containerId: 'c0ffee', netns: `/var/run/netns/${ns}`, ifname: 'eth0', podNamespace: 'demo', podName: 'echo-1', podUid: 'u-1' };

  before(async function () {
    if (process.getuid?.() !== 0) return this.skip();
    root = mkdtempSync(join(tmpdir(), 'weft-cni-node-'));
    await netns.add(ns);
    // Two plugins on the node (only there: the machine has no /opt/cni/bin of theirs), each recording what it was given in the node's /var/run/cni-test.
    const bin = join(root, 'opt', 'cni', 'bin');
    mkdirSync(bin, { recursive: true });
    mkdirSync(join(root, 'var', 'run', 'cni-test'), { recursive: true });
    const plugin = (name: string, result: string): void => {
      writeFileSync(join(bin, name), `#!/bin/sh\nin=$(cat)\nprintf '%s %s %s %s %s %s\\n' "${name}" "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_NETNS" "$CNI_ARGS" "$in" >> /var/run/cni-test/calls\n${result}\n`);
      chmodSync(join(bin, name), 0o755);
    };
    plugin('first', `[ "$CNI_COMMAND" = ADD ] && echo '{"cniVersion":"1.0.0","ips":[{"address":"10.101.1.7/32"}]}'; exit 0`);
    plugin('second', `[ "$CNI_COMMAND" = ADD ] && printf '%s' "$in" | sed 's/.*"prevResult"://; s/}$//'; exit 0`);
    plugin('refusing', `echo '{"cniVersion":"1.0.0","code":11,"msg":"no address left","details":"pool 10.101.1.0/24 is full"}'; exit 1`);
  });
  after(async () => {
    if (root) rmSync(root, { recursive: true, force: true });
    await netns.delete(ns);
  });

  const cni = (): NodeCni => new NodeCni({ nodeRoot: root, dir: join(root, 'scratch'), nodeView: () => [{ source: join(root, 'opt', 'cni', 'bin'), target: '/opt/cni/bin' }, { source: join(root, 'var', 'run', 'cni-test'), target: '/var/run/cni-test' }] });
  const net = (types: string[]) => ({ file: '/etc/cni/net.d/05-test.conflist', cniVersion: '1.0.0', name: 'test', plugins: types.map((type) => ({ type, extra: type })) });

  it('runs ADD through the chain in order, each given the result before it, and DEL in reverse with ADD\'s result', async () => {
    const result = await cni().add(net(['first', 'second']), attachment);
    assert.deepEqual(result, { cniVersion: '1.0.0', ips: [{ address: '10.101.1.7/32' }] });
    await cni().del(net(['first', 'second']), attachment, result);
    const calls = readFileSync(join(root, 'var', 'run', 'cni-test', 'calls'), 'utf8').trim().split('\n');
    assert.deepEqual(calls.map((l) => l.split(' ').slice(0, 2).join(' ')), ['first ADD', 'second ADD', 'second DEL', 'first DEL']);
    const [, , id, path, args, stdin] = calls[1]!.split(' ');
    assert.deepEqual([id, path, args], ['c0ffee', `/var/run/netns/${ns}`, 'IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;K8S_POD_NAME=echo-1;K8S_POD_INFRA_CONTAINER_ID=c0ffee;K8S_POD_UID=u-1']);
    assert.deepEqual(JSON.parse(stdin!), { type: 'second', extra: 'second', cniVersion: '1.0.0', name: 'test', prevResult: result });
    assert.equal(JSON.parse(calls[0]!.split(' ')[5]!).prevResult, undefined, 'the first plugin has no previous result');
  });

  it('reports a plugin\'s refusal with its CNI code, message and details', async () => {
    await assert.rejects(cni().add(net(['refusing']), attachment), (e: Error) => e instanceof CniPluginError && e.message === 'CNI ADD of pod demo/echo-1 by plugin refusing (/etc/cni/net.d/05-test.conflist) failed: no address left (CNI error 11): pool 10.101.1.0/24 is full');
  });

  it('reports a plugin missing from the node\'s /opt/cni/bin', async () => {
    await assert.rejects(cni().add(net(['absent']), attachment), (e: Error) => e instanceof CniPluginError && /by plugin absent .* failed with exit code 127/.test(e.message));
  });
});
