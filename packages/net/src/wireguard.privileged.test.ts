import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { Ip, netns } from './ip.js';
import { ensureWireGuard } from './ensure-wireguard.js';
import { KernelWireGuardUnavailableError, WireGuardError } from './errors.js';
import { run } from './run.js';
import { ensureWireGuardGo, generatePrivateKey, publicKeyOf, WIREGUARD_GO_NICE, WireGuardUapi } from './wireguard.js';

/** Two namespaces joined by a veth, a wireguard-go device in each, configured only through UAPI. */
describe('wireguard-go over UAPI (root)', function () {
  this.timeout(30_000);
  const tag = randomBytes(3).toString('hex');
  const [a, b] = [`wtwg-a-${tag}`, `wtwg-b-${tag}`];
  const [wa, wb] = [`wtwa${tag}`, `wtwb${tag}`];
  const extraDevices: string[] = [];

  before(function () {
    if (process.getuid?.() !== 0) this.skip();
  });
  after(async () => {
    // Deleting a namespace destroys its TUN device; wireguard-go then exits and removes its socket.
    for (const ns of [a, b]) {
      const { stdout } = await run(['ip', 'netns', 'pids', ns], { allowFail: true });
      for (const pid of stdout.split(/\s+/).filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
      await netns.delete(ns);
    }
    // A killed wireguard-go leaves its socket behind.
    for (const dev of [wa, wb, ...extraDevices]) rmSync(new WireGuardUapi(dev).socketPath, { force: true });
  });

  it('carries a ping between two namespaces, and reports the handshake and bytes per peer', async () => {
    await netns.add(a);
    await netns.add(b);
    const [ipa, ipb] = [new Ip(a), new Ip(b)];
    await ipa.addVeth('ua', 'ub', { peerNetns: b });
    await ipa.addAddress('ua', '10.252.0.1/30');
    await ipb.addAddress('ub', '10.252.0.2/30');
    await ipa.setUp('ua');
    await ipb.setUp('ub');
    const [ka, kb] = [generatePrivateKey(), generatePrivateKey()];
    const devA = await ensureWireGuardGo(wa, { netns: a });
    const devB = await ensureWireGuardGo(wb, { netns: b });
    await ensureWireGuardGo(wa, { netns: a });
    const pids = (await run(['pgrep', '-f', `wireguard-go ${wa}`])).stdout.trim().split('\n');
    assert.equal(pids.length, 1, 'a running device is reused, not started twice');
    // Ahead of the control plane for the CPU: its own session, nice -10, and so is its session's autogroup.
    // /proc/<pid>/stat after the command's ')': state is field 3, session 6, nice 19.
    const stat = (pid: string): string[] => { const s = readFileSync(`/proc/${pid}/stat`, 'utf8'); return s.slice(s.lastIndexOf(')') + 2).split(' '); };
    assert.equal(Number(stat(pids[0]!)[19 - 3]), WIREGUARD_GO_NICE, 'nice');
    assert.notEqual(stat(pids[0]!)[6 - 3], stat('self')[6 - 3], 'a session of its own');
    if (existsSync('/proc/self/autogroup')) assert.match(readFileSync(`/proc/${pids[0]}/autogroup`, 'utf8'), new RegExp(`nice ${WIREGUARD_GO_NICE}\\b`));
    await devA.configure(ka, 51820);
    await devB.configure(kb, 51820);
    await devA.setPeers([{ publicKey: publicKeyOf(kb).toString('base64'), endpoint: '10.252.0.2:51820', allowedIps: ['10.253.0.2/32'] }], []);
    await devB.setPeers([{ publicKey: publicKeyOf(ka).toString('base64'), endpoint: '10.252.0.1:51820', allowedIps: ['10.253.0.1/32'] }], []);
    await ipa.addAddress(wa, '10.253.0.1/24');
    await ipb.addAddress(wb, '10.253.0.2/24');
    await ipa.setUp(wa);
    await ipb.setUp(wb);
    // A first handshake lost while the devices come up is retried by WireGuard after 5 s (REKEY_TIMEOUT).
    const deadline = Date.now() + 20_000;
    for (;;) {
      const ok = await netns.exec(a, ['ping', '-c', '1', '-W', '2', '10.253.0.2']).then(() => true, () => false);
      if (ok) break;
      assert.ok(Date.now() < deadline, 'no ping through the tunnel within 20 s');
    }
    const [peer] = await devA.peers();
    assert.equal(peer!.publicKey, publicKeyOf(kb).toString('base64'));
    assert.deepEqual(peer!.allowedIps, ['10.253.0.2/32']);
    assert.ok(peer!.lastHandshakeSec > 0, 'a handshake happened');
    assert.ok(peer!.rxBytes > 0 && peer!.txBytes > 0);
    // Removing the peer stops the traffic.
    await devA.setPeers([], [publicKeyOf(kb).toString('base64')]);
    assert.deepEqual(await devA.peers(), []);
    await assert.rejects(netns.exec(a, ['ping', '-c', '1', '-W', '1', '10.253.0.2']));
  });

  it('ensureWireGuard: auto falls back to wireguard-go on a kernel without WireGuard; kernel is refused with a typed error', async function () {
    // Namespace a exists from the test above (mocha runs them in order); the name is this test's own.
    const name = `wtwc${tag}`;
    const kernelHasIt = await run(['ip', '-n', a, 'link', 'add', name, 'type', 'wireguard'], { allowFail: true }).then(() => new Ip(a).link(name));
    if (kernelHasIt) {
      await new Ip(a).runIdempotent(['link', 'del', name]);
      return this.skip(); // this kernel has WireGuard: the fallback cannot be shown here (the kernel lane covers the kernel path)
    }
    await assert.rejects(ensureWireGuard(name, { netns: a, implementation: 'kernel' }), (e: unknown) => e instanceof KernelWireGuardUnavailableError && /this kernel has no WireGuard \(ip link add answered "Error: Unknown device type\."\)/.test((e as Error).message));
    const dev = await ensureWireGuard(name, { netns: a });
    assert.equal(dev.implementation, 'userspace');
    assert.equal(await dev.alive(), true);
    await dev.configure(generatePrivateKey(), 51830);
    assert.deepEqual(await dev.peers(), []);
    assert.equal((await ensureWireGuard(name, { netns: a })).implementation, 'userspace', 'auto keeps the running wireguard-go');
    // after(): deleting namespace a ends this wireguard-go too; its socket is removed there.
    extraDevices.push(name);
  });

  it('says clearly when a device does not exist', async () => {
    await assert.rejects(new WireGuardUapi(`wtnone${tag}`).request('get=1\n'), (e: unknown) => e instanceof WireGuardError && /cannot reach \/var\/run\/wireguard\/wtnone/.test((e as Error).message));
  });
});
