import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@weft/common';
import { until } from '@weft/kvstore';
import { CONNTRACK_DEFAULTS, conntrackConfig, validateAgentConfig } from './config.js';
import { ConntrackGc } from './conntrack-gc.js';
import type { ConntrackSweep } from './datapath-port.js';
import { EndpointIds, MAX_EP_ID } from './endpoint-manager.js';
import { AgentConfigError } from './errors.js';
import { PolicyRevisions, REVISION_BLOCK } from './revisions.js';

const base = { cluster: 'c1', clusterId: 1, node: 'c1-node1', etcd: ['10.99.1.2:2379'], nodeIp: '10.99.1.11', podCidr: '10.101.1.0/24', bpfDir: '/x' };

describe('conntrack lifecycle: what the agent decides', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'weft-ct-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  describe('endpoint ids', () => {
    it('are handed out forward, so a just-freed id is the last to come back, also after a restart', () => {
      const file = join(dir, 'endpoint-ids.json');
      const ids = new EndpointIds(file);
      const inUse = new Set<number>();
      for (let i = 0; i < 3; i++) inUse.add(ids.next(inUse));
      assert.deepEqual([...inUse], [1, 2, 3]);
      inUse.delete(1); // the first pod goes
      const next = ids.next(inUse);
      assert.equal(next, 4, 'not the freed 1');
      inUse.add(next);
      inUse.delete(4);
      assert.equal(new EndpointIds(file).next(inUse), 5, 'the cursor survives a restart');
    });

    it('wrap at 65535 and skip the ids in use', () => {
      const file = join(dir, 'endpoint-ids.json');
      writeFileSync(file, JSON.stringify({ lastEpId: MAX_EP_ID - 1 }));
      const ids = new EndpointIds(file);
      assert.equal(ids.next(new Set()), MAX_EP_ID);
      assert.equal(ids.next(new Set([1, 2])), 3);
    });

    it('continue after the highest id in use when an older agent left no cursor', () => {
      assert.equal(new EndpointIds(join(dir, 'none.json')).next(new Set([1, 7])), 8);
    });
  });

  describe('policy revisions', () => {
    it('are one counter per node, monotonic across restarts, written once per block', () => {
      const file = join(dir, 'policy-revisions.json');
      const a = new PolicyRevisions(file);
      assert.equal(a.next(), 1);
      assert.equal(a.next(), 2);
      assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { reserved: REVISION_BLOCK });
      const restarted = new PolicyRevisions(file);
      const first = restarted.next();
      assert.ok(first > 2, `after a restart ${first}, never a revision handed out before`);
      for (let i = 0; i < REVISION_BLOCK; i++) restarted.next();
      assert.ok(JSON.parse(readFileSync(file, 'utf8')).reserved >= restarted.last, 'the reservation stays ahead');
    });

    it('never start below what the datapath holds (a lost state directory, pins kept)', () => {
      assert.equal(new PolicyRevisions(join(dir, 'gone.json'), 5000).next(), 5001);
    });
  });

  describe('configuration', () => {
    it('has Cilium-like defaults and names a bad field', () => {
      assert.equal(validateAgentConfig(base).conntrack, undefined);
      assert.deepEqual(conntrackConfig(validateAgentConfig(base)), CONNTRACK_DEFAULTS);
      assert.equal(CONNTRACK_DEFAULTS.tcpEstablishedTimeoutSec, 21_600);
      const c = conntrackConfig(validateAgentConfig({ ...base, conntrack: { maxEntriesPerEndpoint: 1000, udpTimeoutSec: 30 } }));
      assert.equal(c.maxEntriesPerEndpoint, 1000);
      assert.equal(c.udpTimeoutSec, 30);
      assert.equal(c.tcpCloseTimeoutSec, 10);
      const bad: Array<[unknown, RegExp]> = [
        [{ maxEntriesPerEndpoint: 0 }, /conntrack\.maxEntriesPerEndpoint: 0 must be an integer 16-262144/],
        [{ udpTimeoutSec: '60' }, /conntrack\.udpTimeoutSec: "60" must be an integer 1-86400/],
        [{ udpTimeout: 60 }, /conntrack\.udpTimeout: is not a conntrack setting/],
        [{ gcMinIntervalSec: 600, gcMaxIntervalSec: 60 }, /conntrack\.gcMinIntervalSec: 600 is above gcMaxIntervalSec 60/],
        [[], /conntrack: must be an object/],
      ];
      for (const [conntrack, message] of bad) {
        assert.throws(() => validateAgentConfig({ ...base, conntrack }), (err: unknown) => err instanceof AgentConfigError && message.test(err.message), String(message));
      }
    });
  });

  describe('garbage collector', () => {
    function sweep(scanned: number, expired: number, live: Array<[number, number]>): ConntrackSweep {
      return { scanned, expired, flushed: 0, live: new Map(live), recounted: 0, durationMs: 1 };
    }
    const config = { gcMinIntervalSec: 5, gcMaxIntervalSec: 300, maxEntriesPerEndpoint: 1000 };

    it('sweeps more often under pressure and less when calm, within its bounds', async () => {
      let next = sweep(0, 0, []);
      const gc = new ConntrackGc({ sweepConntrack: async () => next }, config, () => 10_000, silentLogger());
      assert.equal(gc.status().intervalMs, 60_000);
      await gc.runOnce();
      assert.equal(gc.status().intervalMs, 90_000, 'an empty table: calm');
      for (let i = 0; i < 10; i++) await gc.runOnce();
      assert.equal(gc.status().intervalMs, 300_000, 'up to the maximum');
      next = sweep(1000, 10, [[3, 600]]); // one endpoint at 60% of its quota
      await gc.runOnce();
      assert.equal(gc.status().intervalMs, 150_000);
      assert.equal(gc.status().last!.quotaUse, 0.6);
      next = sweep(8000, 4000, [[3, 100]]); // half of what it read was dead
      for (let i = 0; i < 10; i++) await gc.runOnce();
      assert.equal(gc.status().intervalMs, 5_000, 'down to the minimum');
      next = sweep(6000, 0, [[1, 200], [2, 5800]]); // the table over half full
      await gc.runOnce();
      assert.equal(gc.status().last!.tableUse, 0.6);
      assert.equal(gc.status().last!.live, 6000);
      assert.equal(gc.status().deletedTotal, 40_010);
      assert.equal(gc.status().runs, 23);
    });

    it('keeps going after a failed sweep, and reports it', async () => {
      let fail = true;
      const gc = new ConntrackGc({ sweepConntrack: async () => { if (fail) throw new Error('EPERM'); return sweep(1, 0, []); } }, config, () => 10, silentLogger());
      await gc.runOnce();
      assert.equal(gc.status().lastError, 'EPERM');
      fail = false;
      await gc.runOnce();
      assert.equal(gc.status().lastError, undefined);
      assert.equal(gc.status().runs, 1);
    });

    it('sweeps soon after a refused connection, but not more than once per minimum interval', async () => {
      let now = 0;
      let sweeps = 0;
      const gc = new ConntrackGc({ sweepConntrack: async () => (sweeps++, sweep(0, 0, [])) }, config, () => 10, silentLogger(), () => now);
      try {
        gc.nudge(); // nothing swept yet: at once
        assert.equal(gc.status().nextInMs, 0);
        await until(async () => sweeps === 1, 'the nudged sweep');
        await until(async () => gc.status().nextInMs !== undefined, 'the next sweep to be scheduled');
        assert.equal(gc.status().nextInMs, 90_000, 'then the interval');
        now = 2_000; // 2 s after the last sweep began
        gc.nudge();
        assert.equal(gc.status().nextInMs, 3_000, 'not before the minimum interval (5 s) since the last');
        now = 4_000;
        gc.nudge();
        assert.equal(gc.status().nextInMs, 1_000, 'a second nudge keeps the earlier time');
      } finally {
        await gc.stop();
      }
      assert.equal(gc.status().nextInMs, undefined, 'stopped: nothing due');
    });
  });
});
