// Kernel WireGuard in the kernel lane: two namespaces, `ip link add type
// wireguard`, keys from packages/net, configured with `wg set`; handshake,
// ping, and only WireGuard's UDP on the wire. Then packages/net's own
// KernelWireGuard (what the agent runs here): ensureWireGuard picks the
// kernel, peers read back from `wg show dump`, and after a private key change
// `handshakeNow` starts the new session at once, not at the next keepalive.
'use strict';
const assert = require('node:assert/strict');
const { randomBytes } = require('node:crypto');
const { rmSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { Ip, generatePrivateKey, publicKeyOf, decodeKey, ensureWireGuard, KernelWireGuard } = require('../../packages/net/dist/index.js');
const { requireLane, underlay, inNs, sendUdp, capture, sleep } = require('./lane.js');

const PORT = 51820;

describe('kernel WireGuard between two nodes', function () {
  this.timeout(120_000);
  let t;

  before(async () => {
    requireLane();
    t = await underlay('wg', '192.168.79');
  });
  after(async () => {
    if (t) await t.cleanup();
  });

  it('handshakes and carries a ping; the marker never crosses the wire in clear', async () => {
    const nodes = [
      { ns: t.a, underlay: t.ipA, inner: '10.79.1.1', cidr: '10.79.1.0/24', key: generatePrivateKey() },
      { ns: t.b, underlay: t.ipB, inner: '10.79.2.1', cidr: '10.79.2.0/24', key: generatePrivateKey() },
    ];
    for (const [self, peer] of [[nodes[0], nodes[1]], [nodes[1], nodes[0]]]) {
      const ip = new Ip(self.ns);
      await ip.run(['link', 'add', 'wg0', 'type', 'wireguard']);
      const link = JSON.parse(await ip.run(['-d', '-j', 'link', 'show', 'dev', 'wg0']))[0];
      assert.equal(link.linkinfo.info_kind, 'wireguard', 'a kernel WireGuard device, not wireguard-go');
      // The private key goes in through a 0600 file (wg takes no key on its command line;
      // /dev/stdin is no use: node's stdio pipes are sockets, which cannot be opened by path).
      const keyFile = join(tmpdir(), `lane-wg-${randomBytes(4).toString('hex')}.key`);
      writeFileSync(keyFile, self.key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
      try {
        await inNs(self.ns, ['wg', 'set', 'wg0', 'private-key', keyFile, 'listen-port', String(PORT), 'peer', publicKeyOf(peer.key).toString('base64'), 'endpoint', `${peer.underlay}:${PORT}`, 'allowed-ips', peer.cidr]);
      } finally {
        rmSync(keyFile, { force: true });
      }
      await ip.addAddress('wg0', `${self.inner}/32`);
      await ip.setUp('wg0');
      await ip.replaceRoute([peer.cidr, 'dev', 'wg0', 'src', self.inner]);
      const shown = (await inNs(self.ns, ['wg', 'show', 'wg0', 'public-key'])).trim();
      assert.deepEqual(decodeKey(shown, 'wg public key'), publicKeyOf(self.key));
    }

    const marker = `weft-lane-marker-${randomBytes(8).toString('hex')}`;
    const cap = await capture(t.w, 'br0');
    let wire;
    try {
      await inNs(t.a, ['ping', '-c', '3', '-i', '0.2', '-W', '5', '-I', '10.79.1.1', '10.79.2.1']);
      await sendUdp(t.a, '10.79.2.1', 7777, marker, 5);
    } finally {
      wire = await cap.stop();
    }
    try {
      assert.equal(wire.bytes.indexOf(Buffer.from(marker)), -1, 'the marker is nowhere in the capture');
      const wg = await wire.read(`udp port ${PORT}`);
      assert.ok(wg.length >= 6, `WireGuard packets on the wire: ${wg.length}`);
      assert.deepEqual(await wire.read(`ip and not udp port ${PORT}`), [], 'nothing else between the nodes');
    } finally {
      wire.remove();
    }

    const hs = (await inNs(t.a, ['wg', 'show', 'wg0', 'latest-handshakes'])).trim().split(/\s+/);
    assert.ok(Number(hs[1]) > 0, `a handshake happened: ${hs.join(' ')}`);
    const [, rx, tx] = (await inNs(t.a, ['wg', 'show', 'wg0', 'transfer'])).trim().split(/\s+/).map(Number);
    assert.ok(rx > 0 && tx > 0, `transfer counters: rx ${rx} tx ${tx}`);
  });

  it('packages/net: ensureWireGuard picks the kernel; after a key change handshakeNow starts a session at once', async () => {
    const port = 51822;
    const pub = (k) => publicKeyOf(k).toString('base64');
    const nodes = [
      { ns: t.a, underlay: t.ipA, inner: '10.78.1.1', cidr: '10.78.1.0/24', key: generatePrivateKey() },
      { ns: t.b, underlay: t.ipB, inner: '10.78.2.1', cidr: '10.78.2.0/24', key: generatePrivateKey() },
    ];
    for (const n of nodes) {
      n.dev = await ensureWireGuard('wgk', { netns: n.ns });
      assert.ok(n.dev instanceof KernelWireGuard && n.dev.implementation === 'kernel', 'auto picks kernel WireGuard here');
      assert.equal((await ensureWireGuard('wgk', { netns: n.ns, implementation: 'kernel' })).implementation, 'kernel', 'an existing device is reused');
      await n.dev.configure(n.key, port);
    }
    const [a, b] = nodes;
    const peerOf = (n) => ({ publicKey: pub(n.key), endpoint: `${n.underlay}:${port}`, allowedIps: [n.cidr] });
    await a.dev.setPeers([peerOf(b)], []);
    await b.dev.setPeers([peerOf(a)], []);
    for (const [self, peer] of [[a, b], [b, a]]) {
      const ip = new Ip(self.ns);
      await ip.addAddress('wgk', `${self.inner}/32`);
      await ip.setUp('wgk');
      await ip.replaceRoute([peer.cidr, 'dev', 'wgk', 'src', self.inner]);
    }
    await inNs(a.ns, ['ping', '-c', '2', '-W', '5', '-I', a.inner, b.inner]);
    const [seen] = await a.dev.peers();
    assert.deepEqual({ ...seen, lastHandshakeSec: seen.lastHandshakeSec > 0, rxBytes: seen.rxBytes > 0, txBytes: seen.txBytes > 0 }, { publicKey: pub(b.key), endpoint: `${b.underlay}:${port}`, allowedIps: [b.cidr], lastHandshakeSec: true, rxBytes: true, txBytes: true });
    assert.equal(Number.isInteger(seen.lastHandshakeSec), true, 'wg show dump: whole seconds');

    // A's new key goes to B first, without a keepalive of B's own, so only A can start the handshake.
    const newKey = generatePrivateKey();
    await inNs(b.ns, ['wg', 'set', 'wgk', 'peer', pub(a.key), 'remove', 'peer', pub(newKey), 'endpoint', `${a.underlay}:${port}`, 'allowed-ips', a.cidr]);
    await sleep(1100); // the next second: a new handshake shows
    const before = (await a.dev.peers())[0].lastHandshakeSec;
    const changedAt = Date.now();
    await a.dev.setPrivateKey(newKey);
    await a.dev.setPeers([peerOf(b)], [], { handshakeNow: true });
    let hs = before;
    while (hs === before && Date.now() - changedAt < 10_000) {
      await sleep(100);
      hs = (await a.dev.peers())[0].lastHandshakeSec;
    }
    const after = (Date.now() - changedAt) / 1000;
    assert.notEqual(hs, before, 'a handshake under the new key within 10 s (the keepalive would take up to 25 s)');
    console.log(`      handshake ${after.toFixed(1)} s after the private key change`);
    assert.ok(hs >= Math.floor(changedAt / 1000), `the handshake (${hs}) is not older than the key change (${changedAt / 1000})`);
    await inNs(a.ns, ['ping', '-c', '1', '-W', '5', '-I', a.inner, b.inner]);
  });
});
