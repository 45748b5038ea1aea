// Geneve in the kernel lane. The agent's tunnel device in geneve mode is
// `ip link add NAME mtu M type geneve external` (collect metadata: the
// datapath sets each packet's VNI and remote, as with `vxlan external`).
// Here routes with `encap ip id VNI dst REMOTE` stand in for the datapath's
// tunnel key, which proves the device sends and receives per-packet metadata;
// a plain Geneve device (fixed VNI and remote) must carry a ping too.
'use strict';
const assert = require('node:assert/strict');
const { Ip } = require('../../packages/net/dist/index.js');
const { requireLane, underlay, inNs, capture } = require('./lane.js');

const VNI = 4242;

describe('Geneve between two nodes', function () {
  this.timeout(120_000);
  let t;

  before(async () => {
    requireLane();
    t = await underlay('gnv', '192.168.78');
  });
  after(async () => {
    if (t) await t.cleanup();
  });

  it('a collect-metadata device, created as the agent does, carries a ping with the VNI each route sets', async () => {
    const nodes = [
      { ns: t.a, underlay: t.ipA, inner: '10.88.1.1' },
      { ns: t.b, underlay: t.ipB, inner: '10.88.2.1' },
    ];
    for (const n of nodes) {
      const ip = new Ip(n.ns);
      await ip.run(['link', 'add', 'gnv0', 'mtu', '1450', 'type', 'geneve', 'external']);
      const link = JSON.parse(await ip.run(['-d', '-j', 'link', 'show', 'dev', 'gnv0']))[0];
      assert.equal(link.linkinfo.info_kind, 'geneve');
      assert.equal(link.linkinfo.info_data.external, true, `collect metadata: ${JSON.stringify(link.linkinfo.info_data)}`);
      await ip.addAddress('gnv0', `${n.inner}/32`);
      await ip.setUp('gnv0');
      n.mac = (await ip.link('gnv0')).address;
    }
    for (const [self, peer] of [[nodes[0], nodes[1]], [nodes[1], nodes[0]]]) {
      const ip = new Ip(self.ns);
      await ip.replaceRoute([`${peer.inner}/32`, 'encap', 'ip', 'id', String(VNI), 'dst', peer.underlay, 'dev', 'gnv0', 'src', self.inner]);
      // ARP cannot cross a metadata device without a tunnel key: the peer's MAC is set, as the datapath would.
      await ip.run(['neigh', 'replace', peer.inner, 'lladdr', peer.mac, 'dev', 'gnv0', 'nud', 'permanent']);
    }

    const cap = await capture(t.w, 'br0');
    let wire;
    try {
      await inNs(t.a, ['ping', '-c', '3', '-i', '0.2', '-W', '5', '-I', '10.88.1.1', '10.88.2.1']);
    } finally {
      wire = await cap.stop();
    }
    try {
      const gnv = await wire.read('udp port 6081');
      assert.ok(gnv.length >= 6, `Geneve packets on the wire: ${gnv.length}`);
      const vni = `vni 0x${VNI.toString(16)}`;
      assert.ok(gnv.every((l) => l.includes(vni)), `every packet carries ${vni}: ${gnv[0]}`);
    } finally {
      wire.remove();
    }
  });

  it('a plain Geneve tunnel (fixed VNI and remote) carries a ping', async () => {
    // Its own UDP port: the metadata device above owns 6081 in these namespaces.
    const ends = [
      { ns: t.a, remote: t.ipB, inner: '10.89.0.1/24' },
      { ns: t.b, remote: t.ipA, inner: '10.89.0.2/24' },
    ];
    for (const e of ends) {
      const ip = new Ip(e.ns);
      await ip.run(['link', 'add', 'gnv1', 'type', 'geneve', 'id', '7', 'remote', e.remote, 'dstport', '6082']);
      await ip.addAddress('gnv1', e.inner);
      await ip.setUp('gnv1');
    }
    const out = await inNs(t.a, ['ping', '-c', '3', '-i', '0.2', '-W', '5', '10.89.0.2']);
    assert.match(out, /3 packets transmitted, 3 received/);
  });
});
