// IPsec in the kernel lane: packages/net's Xfrm between two namespaces, proved
// on the wire (ESP only, the marker never in clear), with the SAs' counters,
// and a make-before-break key rotation under a ping flood with zero loss.
'use strict';
const assert = require('node:assert/strict');
const { randomBytes } = require('node:crypto');
const { Ip, Xfrm, IpsecStateError, generateMeshKey, parseMeshKey, ipsecSpi } = require('../../packages/net/dist/index.js');
const { requireLane, underlay, inNs, sendUdp, spawnInNs, udpSink, capture, sleep } = require('./lane.js');

describe('IPsec (ESP tunnel, rfc4106(gcm(aes))) between two nodes', function () {
  this.timeout(180_000);
  const key1 = parseMeshKey(generateMeshKey(), 1);
  const key2 = parseMeshKey(generateMeshKey(), 2);
  let t, xa, xb, peerA, peerB;

  before(async () => {
    requireLane();
    t = await underlay('esp', '192.168.77');
    // Each node's "pods" are an address of its own pod CIDR on lo, routed to the peer with that source.
    await new Ip(t.a).addAddress('lo', '10.77.1.1/32');
    await new Ip(t.b).addAddress('lo', '10.77.2.1/32');
    await new Ip(t.a).replaceRoute(['10.77.2.0/24', 'via', t.ipB, 'dev', 'ul0', 'src', '10.77.1.1']);
    await new Ip(t.b).replaceRoute(['10.77.1.0/24', 'via', t.ipA, 'dev', 'ul0', 'src', '10.77.2.1']);
    xa = new Xfrm({ netns: t.a });
    xb = new Xfrm({ netns: t.b });
    peerA = { localIp: t.ipA, remoteIp: t.ipB, localCidrs: ['10.77.1.0/24'], remoteCidrs: ['10.77.2.0/24'] };
    peerB = { localIp: t.ipB, remoteIp: t.ipA, localCidrs: ['10.77.2.0/24'], remoteCidrs: ['10.77.1.0/24'] };
  });
  after(async () => {
    if (t) await t.cleanup();
  });

  it('carries pod traffic as ESP only: the marker arrives, and never crosses the wire in clear', async () => {
    await xa.install(peerA, key1);
    await xb.install(peerB, key1);
    const marker = `weft-lane-marker-${randomBytes(8).toString('hex')}`;
    const sink = await udpSink(t.b, '10.77.2.1', 7777);
    const cap = await capture(t.w, 'br0');
    let payloads;
    let wire;
    try {
      await inNs(t.a, ['ping', '-c', '5', '-i', '0.2', '-W', '2', '-I', '10.77.1.1', '10.77.2.1']);
      await sendUdp(t.a, '10.77.2.1', 7777, marker, 10);
    } finally {
      payloads = await sink.stop();
      wire = await cap.stop();
    }
    try {
      assert.ok(payloads.includes(marker), `the sink got the marker (got ${payloads.length} datagrams)`);
      assert.equal(wire.bytes.indexOf(Buffer.from(marker)), -1, 'the marker is nowhere in the capture');
      const esp = await wire.read('esp');
      const clear = await wire.read('ip and not esp');
      assert.ok(esp.length >= 20, `ESP on the wire: ${esp.length} packets (5 pings, 5 replies, 10 datagrams)`);
      assert.deepEqual(clear, [], 'no IPv4 packet other than ESP between the nodes');
      assert.ok(esp.some((l) => l.includes(`spi=0x${ipsecSpi(t.ipA, t.ipB, 1).toString(16).padStart(8, '0')}`)), `ESP with the derived SPI: ${esp[0]}`);
    } finally {
      wire.remove();
    }

    const states = await xa.states();
    const out = states.find((s) => s.src === t.ipA && s.dst === t.ipB);
    const inbound = states.find((s) => s.src === t.ipB && s.dst === t.ipA);
    assert.equal(out.spi, ipsecSpi(t.ipA, t.ipB, 1));
    assert.equal(out.keyId, 1);
    assert.equal(out.aead, 'rfc4106(gcm(aes))');
    assert.equal(out.icvBits, 128);
    assert.ok(out.packets >= 15 && out.bytes > 0, `A's outbound SA counted ${out.packets} packets`);
    assert.ok(inbound.packets >= 5, `A's inbound SA counted ${inbound.packets} packets (the echo replies)`);
    assert.equal(inbound.integrityFailures + inbound.replayDrops + inbound.replayWindowDrops, 0);
    // Installing again is a no-op; the same key id with another mesh key is refused, not applied.
    await xa.install(peerA, key1);
    await assert.rejects(xa.addInbound(peerA, parseMeshKey(generateMeshKey(), 1)), (e) => e instanceof IpsecStateError && /a new mesh key needs a new key id/.test(e.message));
  });

  it('rotates to a new key id make-before-break under a ping flood with zero loss', async () => {
    const count = 1000;
    const before = await xa.states();
    // 10 ms apart: about 10 s of traffic in both directions (echo and reply), outlasting every step even on a loaded machine.
    const ping = spawnInNs(t.a, ['ping', '-c', String(count), '-i', '0.01', '-W', '2', '-w', '90', '-I', '10.77.1.1', '10.77.2.1']);
    await sleep(500);
    // 1. Receivers ready: both nodes accept key 2 (and still key 1).
    await xa.addInbound(peerA, key2);
    await xb.addInbound(peerB, key2);
    // 2. Senders switch: one policy update per node.
    await xa.switchOutbound(peerA, key2);
    await xb.switchOutbound(peerB, key2);
    // 3. Old key removed once both sent under the new one and the in-flight packets are in.
    await sleep(300);
    await xa.removeKey(peerA, 1);
    await xb.removeKey(peerB, 1);
    assert.equal(ping.child.exitCode, null, 'the rotation finished while the ping flood still ran (make it longer if this fails)');
    const r = await ping.done;
    const summary = r.stdout.split('\n').find((l) => /packets transmitted/.test(l));
    assert.match(summary ?? r.stdout + r.stderr, new RegExp(`^${count} packets transmitted, ${count} received, 0% packet loss`));

    const after = await xa.states();
    assert.deepEqual(after.map((s) => s.keyId).sort(), [2, 2], 'only key 2 is left');
    for (const s of after) assert.ok(s.packets > 0, `key 2 SA ${s.src} -> ${s.dst} carried traffic (${s.packets} packets)`);
    const oldOut = before.find((s) => s.src === t.ipA && s.keyId === 1);
    assert.ok(oldOut.packets > 0, 'key 1 carried traffic before');
  });
});
