/**
 * `weft agent uninstall` on the real datapath: after it, nothing of Weft's is left on the node but
 * what belongs to the pods (their veths stay, without programs): no pins, no tunnel device, no
 * filter of Weft's on the underlay device (another's filter there stays). Needs root (bpf(2),
 * bpffs, links of its own that carry no traffic); everything is removed after the test.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@weft/common';
import { ifindexOf, queryTc } from '@weft/datapath';
import { BpfDatapath } from './bpf-datapath.js';
import { validateAgentConfig } from './config.js';
import { BPF_DIR, lxcSuite } from './testing/lxc-programs.js';

const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8' });

describe('datapath uninstall (root, real maps and links)', function () {
  this.timeout(60_000);
  const { tag, cleanups, root: pinRoot } = lxcSuite('wtun');

  it('removes the pins, the tunnel device and its own filters, and leaves the pods\' veths and others\' filters', async () => {
    const root = pinRoot();
    const stateDir = mkdtempSync(join(tmpdir(), 'wtun-'));
    cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }));
    const underlay = `wtul-${tag}`;
    const pod = `wtlx-${tag}`;
    const tunnel = `wtvx-${tag}`;
    for (const [a, b] of [[underlay, `wtup-${tag}`], [pod, `wtpp-${tag}`]] as const) {
      ip('link', 'add', a, 'type', 'veth', 'peer', 'name', b);
      cleanups.push(() => void ip('link', 'del', a));
    }
    cleanups.push(() => void execFileSync('ip', ['link', 'del', tunnel], { stdio: 'ignore' }));
    ip('addr', 'add', '192.0.2.79/32', 'dev', underlay);
    // Another's filter on the underlay device, at another priority: it must survive.
    execFileSync('tc', ['qdisc', 'add', 'dev', underlay, 'clsact']);
    execFileSync('tc', ['filter', 'add', 'dev', underlay, 'ingress', 'prio', '7', 'u32', 'match', 'u32', '0', '0']);
    // A pod's veth with programs on it (what the endpoint manager attaches; here a clsact hook).
    execFileSync('tc', ['qdisc', 'add', 'dev', pod, 'clsact']);
    execFileSync('tc', ['filter', 'add', 'dev', pod, 'ingress', 'prio', '1', 'u32', 'match', 'u32', '0', '0']);
    const config = validateAgentConfig({ cluster: 'c1', clusterId: 1, node: `wtun-${tag}`, etcd: ['127.0.0.1:1'], nodeIp: '192.0.2.79', podCidr: '10.101.1.0/24', routing: 'vxlan', tunnelDevice: tunnel, vxlanPort: 18472, encryption: 'off', underlayDevice: underlay, bpfDir: BPF_DIR, pinRoot: root, stateDir, mapSizes: { ct: 1024 } });

    const dp = new BpfDatapath(config, silentLogger());
    cleanups.push(() => void dp.stop());
    await dp.start();
    assert.ok(existsSync(root) && ifindexOf(tunnel) !== undefined);
    assert.ok(existsSync(join(root, 'weft_events_lost')), 'the lost flow events are pinned (and go with the rest)');
    assert.equal(await dp.flowEventsLost(), 0n);
    assert.notEqual(queryTc({ ifindex: ifindexOf(underlay)!, direction: 'ingress', priority: 1, handle: 0x77656674 }), undefined);

    const removed = await dp.uninstall([pod]);
    assert.deepEqual(removed, [`tc programs of ${pod}`, `from_underlay on ${underlay}`, `link ${tunnel}`, `pins ${root}`]);
    assert.equal(existsSync(root), false, 'no pins');
    assert.equal(ifindexOf(tunnel), undefined, 'no tunnel device');
    assert.equal(queryTc({ ifindex: ifindexOf(underlay)!, direction: 'ingress', priority: 1, handle: 0x77656674 }), undefined, 'no from_underlay');
    assert.match(execFileSync('tc', ['filter', 'show', 'dev', underlay, 'ingress'], { encoding: 'utf8' }), /pref 7 u32/, 'another\'s filter stays');
    assert.notEqual(ifindexOf(pod), undefined, 'the pod keeps its veth');
    assert.doesNotMatch(execFileSync('tc', ['qdisc', 'show', 'dev', pod], { encoding: 'utf8' }), /clsact/, 'without programs');
    assert.deepEqual(await dp.uninstall([pod]), [], 'a second time removes nothing');
  });
});
