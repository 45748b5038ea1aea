import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Ip, netns } from './ip.js';
import { NetCommandError } from './errors.js';

describe('Ip and netns (root)', function () {
  const tag = randomBytes(3).toString('hex');
  const a = `wtnet-a-${tag}`;
  const b = `wtnet-b-${tag}`;

  before(function () {
    if (process.getuid?.() !== 0) this.skip();
  });
  after(async () => {
    await netns.delete(a);
    await netns.delete(b);
  });

  it('builds two namespaces joined by a veth pair and pings across', async () => {
    await netns.add(a);
    await netns.add(b);
    const ipa = new Ip(a);
    const ipb = new Ip(b);
    await ipa.addVeth('va', 'vb', { peerNetns: b, mtu: 1400 });
    await ipa.addAddress('va', '10.251.0.1/30');
    await ipb.addAddress('vb', '10.251.0.2/30');
    await ipa.setUp('va');
    await ipb.setUp('vb');
    const link = await ipa.link('va');
    assert.equal(link?.mtu, 1400);
    assert.ok(link!.ifindex > 0);
    const { stdout } = await netns.exec(a, ['ping', '-c', '1', '-W', '2', '10.251.0.2']);
    assert.match(stdout, /1 received/);
    assert.ok((await netns.list()).includes(a));
    assert.equal((await ipa.deviceWithAddress('10.251.0.1'))?.ifname, 'va', 'the device holding an address');
    assert.equal(await ipa.deviceWithAddress('10.251.0.2'), undefined, 'not an address of this namespace');
  });

  it('treats deleting what is gone as done, and reports real failures with stderr', async () => {
    await new Ip(a).deleteLink('no-such-link');
    await assert.rejects(new Ip(a).addAddress('no-such-link', '10.251.9.1/30'), (err: unknown) => {
      assert.ok(err instanceof NetCommandError);
      assert.match(err.message, /ip -n wtnet-a-\w+ addr replace 10\.251\.9\.1\/30 dev no-such-link/);
      return true;
    });
    await netns.delete(`wtnet-never-${tag}`);
    assert.equal(await new Ip(a).link('no-such-link'), undefined);
  });
});
