/**
 * The load balancer's maps on the real datapath: a partial update
 * (updateServices) leaves the frontends it is not given as they are, keeps
 * backends in their slots, and ends where a whole sync (syncServices) of the
 * same content would, also for an agent restarted on pinned maps; weft_lb_vips
 * has a bit for exactly the frontends held. Needs root
 * (bpf(2), bpffs, a veth pair of its own that carries no traffic); every pin
 * and link is removed after the test.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@weft/common';
import { BpfMap, ipv4ToInt, LbVipFilter } from '@weft/datapath';
import { BpfDatapath } from './bpf-datapath.js';
import { validateAgentConfig } from './config.js';
import type { ServiceProgram } from './datapath-port.js';
import { BPF_DIR, lxcSuite } from './testing/lxc-programs.js';

const svc = (vip: string, port: number, ips: string[], protocol: 'TCP' | 'UDP' = 'TCP'): ServiceProgram => ({ vip, port, protocol, backends: ips.map((ip) => ({ ip, port: 8080 })) });
const sorted = (s: ServiceProgram[]): ServiceProgram[] => [...s].sort((a, b) => (`${a.vip}/${a.port}/${a.protocol}` < `${b.vip}/${b.port}/${b.protocol}` ? -1 : 1));

describe('service maps: partial updates (root, real maps)', function () {
  this.timeout(60_000);
  const { tag, cleanups, root: pinRoot } = lxcSuite('wtsv');

  it('writes only the frontends given, keeps slots, and ends where a whole sync would, across a restart', async () => {
    const root = pinRoot();
    const stateDir = mkdtempSync(join(tmpdir(), 'wtsv-'));
    cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }));
    const underlay = `wtsv-${tag}`;
    execFileSync('ip', ['link', 'add', underlay, 'type', 'veth', 'peer', 'name', `wtsp-${tag}`]);
    cleanups.push(() => execFileSync('ip', ['link', 'del', underlay]));
    execFileSync('ip', ['addr', 'add', '192.0.2.78/32', 'dev', underlay]);
    const config = validateAgentConfig({ cluster: 'c1', clusterId: 1, node: `wtsv-${tag}`, etcd: ['127.0.0.1:1'], nodeIp: '192.0.2.78', podCidr: '10.101.1.0/24', routing: 'direct', encryption: 'off', underlayDevice: underlay, bpfDir: BPF_DIR, pinRoot: root, stateDir, mapSizes: { ct: 1024, lbServices: 256, lbBackends: 256 } });

    /** The addresses weft_lb_vips has a bit for, of those given (10.96.0.1-4 fall on four different bits). */
    const bitsOf = (vips: string[]): string[] => {
      const map = BpfMap.openPinned(join(root, 'weft_lb_vips'));
      try {
        const filter = new LbVipFilter(map);
        return vips.filter((v) => filter.has(ipv4ToInt(v)));
      } finally {
        map.close();
      }
    };
    const all = ['10.96.0.1', '10.96.0.2', '10.96.0.3', '10.96.0.4'];

    const first = new BpfDatapath(config, silentLogger());
    cleanups.push(() => void first.stop());
    await first.start();
    const a = svc('10.96.0.1', 80, ['10.101.1.2', '10.101.1.3', '10.101.1.4']);
    const b = svc('10.96.0.2', 53, ['10.101.1.5'], 'UDP');
    const c = svc('10.96.0.3', 443, ['10.101.1.6', '10.101.1.7']);
    assert.equal((await first.syncServices([a, b, c])).frontends, 3);
    assert.deepEqual(bitsOf(all), ['10.96.0.1', '10.96.0.2', '10.96.0.3'], 'a bit for each frontend\'s address');

    // One backend of a leaves (the last takes its slot), c goes, d comes; b is not given and stays.
    const a2 = svc('10.96.0.1', 80, ['10.101.1.2', '10.101.1.4']);
    const d = svc('10.96.0.4', 80, ['10.101.1.8']);
    const r = await first.updateServices([a2, d], [c, svc('10.96.9.9', 80, [])]);
    assert.equal(r.frontends, 3);
    const held = sorted(await first.dumpServices());
    assert.deepEqual(held, sorted([svc('10.96.0.1', 80, ['10.101.1.2', '10.101.1.4']), b, d]));
    assert.deepEqual(bitsOf(all), ['10.96.0.1', '10.96.0.2', '10.96.0.4'], 'the removed frontend\'s bit cleared, the new one\'s set');
    await first.stop();

    // A restarted agent reads the slots back; a partial update then matches a whole sync of the same content.
    const second = new BpfDatapath(config, silentLogger());
    cleanups.push(() => void second.stop());
    await second.start();
    await second.updateServices([svc('10.96.0.1', 80, ['10.101.1.4', '10.101.1.9'])], [d]);
    const partial = sorted(await second.dumpServices());
    assert.deepEqual(partial, sorted([svc('10.96.0.1', 80, ['10.101.1.9', '10.101.1.4']), b]), '10.101.1.9 takes the freed slot 1; 10.101.1.4 keeps slot 2');
    assert.deepEqual(await second.syncServices(partial), { frontends: 2, changed: 0 }, 'a whole sync of the same content writes nothing');
    assert.deepEqual(bitsOf(all), ['10.96.0.1', '10.96.0.2'], 'across the restart too');
    await second.stop();
  });
});
