import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@weft/common';
import { EtcdProcess } from '@weft/kvstore';
import { parseExposition, sampleValue, scrape } from '@weft/metrics/testing';
import { Agent } from './agent.js';
import { validateAgentConfig } from './config.js';
import { MemoryDatapath } from './memory-datapath.js';

/** The real Agent with `observer.export`, a real etcd, the in-memory datapath: what reaches the file. */
describe('agent flow export @etcd', function () {
  this.timeout(60_000);
  let etcd: EtcdProcess;
  let dir: string;
  before(async () => {
    etcd = await EtcdProcess.start({ name: 'agent-flow-export' });
    dir = mkdtempSync(join(tmpdir(), 'weft-agent-export-'));
  });
  after(async () => {
    await etcd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('exports every datapath event the filters pass, with the masked fields, and writes them all when stopped', async () => {
    const filePath = join(dir, 'flows', 'flows.json');
    const config = validateAgentConfig({
      cluster: 'c1', clusterId: 1, node: 'n1', etcd: [etcd.endpoint], nodeIp: '10.99.1.11', podCidr: '10.101.1.0/24', bpfDir: '/nonexistent', stateDir: join(dir, 'state'), encryption: 'off',
      observer: { export: { filePath, fieldMask: ['verdict', 'dropReason', 'source.ip', 'destination.port', 'node'], denyList: [{ destinationPort: [53] }] } },
      metrics: { listen: '127.0.0.1:0' },
    });
    const datapath = new MemoryDatapath();
    const agent = new Agent(config, datapath, silentLogger());
    await agent.start();
    const sample = { timestampNs: 1_000_000n, srcIdentity: 2, dstIdentity: 2, saddr: '10.99.255.250', daddr: '10.101.1.9', sport: 40000, dport: 8080, protocol: 6, verdict: 1, dropReason: 0, point: 2, epId: 1, flags: 2, length: 60, ruleId: 0, tcpFlags: 0x02, servicePort: 0 };
    datapath.emitFlow(sample);
    datapath.emitFlow({ ...sample, protocol: 17, dport: 53 });
    datapath.emitFlow({ ...sample, verdict: 2, dropReason: 1, dport: 5432 });
    const stats = agent.exporter!.stats;
    // The agent's metrics say what the export did, once it has written (at most a second later).
    const deadline = Date.now() + 10_000;
    while (agent.exporter!.stats.exported < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const families = parseExposition((await scrape(agent.metrics!.address!)).body);
    const written = agent.exporter!.stats;
    assert.deepEqual(
      ['exported', 'filtered', 'lost'].map((outcome) => sampleValue(families, 'weft_flow_export_flows_total', { outcome })),
      [2, 1, 0],
    );
    assert.equal(sampleValue(families, 'weft_flow_export_bytes_total'), written.bytes);
    assert.ok(written.bytes > 0);
    assert.equal(sampleValue(families, 'weft_flow_export_rotations_total'), 0);
    assert.equal(sampleValue(families, 'weft_flow_export_queued_bytes'), 0);
    await agent.stop();
    const lines = readFileSync(filePath, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines, [
      { node: 'n1', verdict: 'FORWARDED', dropReason: '', source: { ip: '10.99.255.250' }, destination: { port: 8080 } },
      { node: 'n1', verdict: 'DROPPED', dropReason: 'POLICY_DENIED', source: { ip: '10.99.255.250' }, destination: { port: 5432 } },
    ]);
    assert.equal(stats.filtered, 1);
    assert.deepEqual([agent.exporter!.stats.exported, agent.exporter!.stats.lost], [2, 0]);
    // The agent's own GetFlows buffer has all three: the export's filters are the export's.
    assert.equal(agent.flows.ring.seen, 3);
  });
});
