/**
 * weft_lb_vips on the real datapath: from_container translates a packet to a
 * service address only when the address's bit is set, and the bit user space
 * computes (lbVipBit) is the one the program reads, for addresses all over the
 * bitmap. bpf_lxc.o runs on crafted frames (BPF_PROG_TEST_RUN, nothing sent).
 * Needs root (bpf(2), bpffs); pins are removed after each test, pass or fail.
 */
import assert from 'node:assert/strict';
import { silentLogger } from '@weft/common';
import { intToIpv4, ipv4ToInt, LbVipFilter, lbVipBit, MapName } from '@weft/datapath';
import { PolicyMapWriter } from './policy-map-writer.js';
import { expectPass, frame, frontend, lxcSuite, peer, slot, TCP } from './testing/lxc-programs.js';

const A = '10.0.0.1';
const BACKEND = '10.1.0.5';
const SYN = 0x02;

describe('service address filter: weft_lb_vips (root, real programs)', function () {
  this.timeout(60_000);
  const suite = lxcSuite('wtlv');

  it('translates a service address only with its bit set, the bit user space computes', () => {
    const dp = suite.load({ [MapName.lbServices]: 1024, [MapName.lbBackends]: 1024, [MapName.ct]: 4096 });
    new PolicyMapWriter({ endpoints: dp.map('endpoints'), policy: dp.map('policy') }, silentLogger()).program(slot(1, A), [], 1);
    peer(dp.map('ipcache'), BACKEND, 70_001);
    const filter = new LbVipFilter(dp.map('lbVips'));
    const send = (vip: number, sport: number): number => {
      const v = dp.run('from_container', frame(A, intToIpv4(vip), TCP, sport, 80, SYN));
      expectPass(v, `A -> ${vip.toString(16)}:80`);
      return v.events[0]!.daddr;
    };

    // 200 addresses spread over the bitmap: each is translated once its bit is set, not before.
    const vips = Array.from({ length: 200 }, (_, i) => (0x0a600000 + i * 40_503) >>> 0);
    const bits = new Set(vips.map(lbVipBit));
    assert.ok(bits.size > 190, `the addresses fall on ${bits.size} different bits`);
    for (const vip of vips) frontend(dp, vip, 80, BACKEND, 8080, { bit: false });
    let sport = 20_000;
    for (const vip of vips) assert.equal(send(vip, sport++), vip, 'a frontend without its bit: not looked up, sent as addressed');
    assert.ok(filter.admit(vips) > 100, 'the bits are written');
    for (const vip of vips) assert.equal(send(vip, sport++), ipv4ToInt(BACKEND), 'with its bit: translated to the backend');

    // Rebuilt without half of them: those are sent as addressed again, the rest still translated.
    const kept = vips.filter((_, i) => i % 2 === 0);
    filter.rebuild(kept);
    for (const vip of vips) {
      const expected = filter.has(vip) ? ipv4ToInt(BACKEND) : vip;
      assert.equal(send(vip, sport++), expected, `${vip.toString(16)}: bit ${filter.has(vip) ? 'set' : 'clear'}`);
    }
    for (const vip of kept) assert.ok(filter.has(vip), 'every kept address keeps its bit');
    assert.ok(vips.some((v) => !filter.has(v)), 'and the others lost theirs');
  });
});
