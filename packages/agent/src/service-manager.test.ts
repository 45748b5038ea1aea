import assert from 'node:assert/strict';
import { silentLogger } from '@weft/common';
import type { Resource, ResourceSource, ResourceWatchHandler, ServiceEndpointsHandler, ServiceSpec } from '@weft/resources';
import type { ClusterState } from './cluster-state.js';
import type { Datapath, ServiceProgram } from './datapath-port.js';
import { ServiceManager } from './service-manager.js';
import type { EndpointRecord } from '@weft/schema';

const KEY = 'weft/resources/v1/Service/shop/web';
const web: Resource<ServiceSpec> = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'shop', labels: {}, annotations: {} }, spec: { type: 'ClusterIP', clusterIP: '10.96.12.34', selector: { app: 'web' }, ports: [{ protocol: 'TCP', port: 80, targetPort: 8080 }] } };

function endpoint(ip: string, app: string): EndpointRecord {
  return { ip, identity: 0x10100, node: 'n1', nodeIp: '192.168.56.11', namespace: 'shop', pod: `${app}-${ip}`, labels: { app } };
}

/** A source holding one Service; with `slices`, it also reports EndpointSlice readiness as Kubernetes does. */
function fakeSource(slices: boolean): { source: ResourceSource; ready?: ServiceEndpointsHandler } {
  const out: { source: ResourceSource; ready?: ServiceEndpointsHandler } = {
    source: {
      get: async () => undefined,
      watch: <S>(_kind: string, h: ResourceWatchHandler<S>) => {
        h.onChange('upsert', KEY, web as unknown as Resource<S>);
        h.onSynced?.();
        return { stop: async () => undefined };
      },
    },
  };
  if (slices) out.source.watchServiceEndpoints = (h) => ((out.ready = h), { stop: async () => undefined });
  return out;
}

async function backends(programs: () => ServiceProgram[] | undefined, want: string[]): Promise<void> {
  const until = Date.now() + 2000;
  for (;;) {
    const got = programs()?.[0]?.backends.map((b) => b.ip);
    if (got && JSON.stringify(got) === JSON.stringify(want)) return;
    if (Date.now() > until) assert.deepEqual(got, want);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('ServiceManager and the resource source', () => {
  const state = { endpoints: new Map([['10.244.1.5', endpoint('10.244.1.5', 'web')], ['10.244.2.6', endpoint('10.244.2.6', 'web')], ['10.244.3.7', endpoint('10.244.3.7', 'db')]]), remoteEndpointsByCluster: () => new Map(), remoteServices: new Map() } as unknown as ClusterState;
  let programs: ServiceProgram[] | undefined;
  const datapath = { syncServices: async (p: ServiceProgram[]) => ((programs = p), { frontends: p.length, changed: p.length }) } as unknown as Datapath;
  let manager: ServiceManager | undefined;
  beforeEach(() => (programs = undefined));
  afterEach(async () => manager?.stop());

  it('standalone: the selector alone picks the backends', async () => {
    manager = new ServiceManager('c1', fakeSource(false).source, state, datapath, silentLogger());
    await manager.start();
    await backends(() => programs, ['10.244.1.5', '10.244.2.6']);
  });

  it('kubernetes: only addresses the EndpointSlices call ready, and nothing before the slices are read', async () => {
    const fake = fakeSource(true);
    manager = new ServiceManager('c1', fake.source, state, datapath, silentLogger());
    let started = false;
    const starting = manager.start().then(() => (started = true));
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(started, false, 'waits for the slices: a restart must not empty the maps meanwhile');
    assert.equal(programs, undefined);
    fake.ready!.onChange(KEY, new Set(['10.244.1.5', '10.244.3.7']));
    fake.ready!.onSynced!();
    await starting;
    await backends(() => programs, ['10.244.1.5']); // 10.244.2.6 not ready; 10.244.3.7 ready but not selected
    fake.ready!.onChange(KEY, new Set(['10.244.1.5', '10.244.2.6']));
    await backends(() => programs, ['10.244.1.5', '10.244.2.6']);
    fake.ready!.onChange(KEY, undefined);
    await backends(() => programs, []);
  });
});
