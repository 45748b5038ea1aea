import assert from 'node:assert/strict';
import { agentHealth, type AgentHealthState } from './health.js';

const running: AgentHealthState = {
  starting: undefined,
  encryption: 'wireguard',
  session: { state: 'active', leaseId: '7587', ttlSeconds: 10 },
  source: 'kubernetes',
  resourcesSynced: true,
};
const failing = (s: AgentHealthState): string[] => agentHealth(s).checks.filter((c) => !c.ok).map((c) => c.name);

describe('agent health', () => {
  it('is ready when started, its etcd lease is kept and the resources are listed', () => {
    const r = agentHealth(running);
    assert.equal(r.ready, true);
    assert.deepEqual(r.checks, [
      { name: 'started', ok: true, detail: 'datapath loaded, encryption wireguard started' },
      { name: 'kvstore', ok: true, detail: 'etcd lease 7587 kept alive (ttl 10s)' },
      { name: 'resources', ok: true, detail: 'policies and Services listed from the Kubernetes API server' },
    ]);
    assert.equal(agentHealth({ ...running, encryption: 'off' }).checks[0]!.detail, 'datapath loaded, encryption off');
  });

  it('says which start step it is in, and that nothing is there yet', () => {
    const r = agentHealth({ starting: 'loading the datapath', encryption: 'wireguard', session: undefined, source: 'standalone', resourcesSynced: false });
    assert.equal(r.ready, false);
    assert.deepEqual(r.checks.map((c) => [c.name, c.ok, c.detail]), [
      ['started', false, 'loading the datapath'],
      ['kvstore', false, 'no etcd session yet'],
      ['resources', false, 'waiting for the initial lists of policies and Services from etcd'],
    ]);
  });

  it('is not ready while its etcd lease is lost and being renewed, nor during the last start steps', () => {
    const lost = agentHealth({ ...running, session: { state: 'lost', leaseId: '7587', ttlSeconds: 10 } });
    assert.equal(lost.ready, false);
    assert.deepEqual(failing({ ...running, session: { state: 'lost', leaseId: '7587', ttlSeconds: 10 } }), ['kvstore']);
    assert.match(lost.checks[1]!.detail, /lease 7587 lost .*renewing/);
    assert.deepEqual(failing({ ...running, session: { state: 'closed', leaseId: '7587', ttlSeconds: 10 } }), ['kvstore']);
    // Resources listed, endpoints still being restored: not ready yet (CNI is not served yet either).
    assert.deepEqual(failing({ ...running, starting: 'restoring endpoints' }), ['started']);
    assert.deepEqual(failing({ ...running, resourcesSynced: false }), ['resources']);
  });
});
