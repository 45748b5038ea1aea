import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { seededRandom as rng, silentLogger } from '@weft/common';
import { workloadLabels, type IdentityAllocator, type IdentityChange, type LabelSet } from '@weft/identity';
import { parsePolicy, policyCidrs, resolveEndpoint, type Policy } from '@weft/policy';
import type { Resource, ResourceSource, ResourceWatchHandler } from '@weft/resources';
import { validateAgentConfig } from './config.js';
import type { PolicyMapEntry } from './datapath-port.js';
import { endpointLabels, type Endpoint } from './endpoint-manager.js';
import { MemoryDatapath } from './memory-datapath.js';
import { PolicyEngine } from './policy-engine.js';


const CLUSTER = 'c1';
const config = validateAgentConfig({ cluster: CLUSTER, clusterId: 1, node: 'n1', etcd: ['127.0.0.1:1'], nodeIp: '192.0.2.1', podCidr: '10.1.0.0/24', bpfDir: '/nonexistent' });

/** The identity cache's events, as the allocator's cache gives them. */
class FakeIdentities extends EventEmitter {
  readonly byId = new Map<number, LabelSet>();
  entries(): IterableIterator<[number, LabelSet]> {
    return this.byId.entries();
  }
  set(id: number, labels: LabelSet): void {
    this.byId.set(id, labels);
    this.emit('change', { type: 'upsert', id, labels } satisfies IdentityChange);
  }
  delete(id: number): void {
    const labels = this.byId.get(id)!;
    this.byId.delete(id);
    this.emit('change', { type: 'delete', id, labels } satisfies IdentityChange);
  }
}

/** The policy resources' watch: synced at once, changes when the test says. */
class FakeResources {
  readonly handlers: ResourceWatchHandler[] = [];
  watch(_kind: string, handler: ResourceWatchHandler) {
    this.handlers.push(handler);
    queueMicrotask(() => handler.onSynced?.());
    return { stop: async () => undefined };
  }
  change(type: 'upsert' | 'delete', key: string, res: Resource | undefined): void {
    for (const h of this.handlers) h.onChange(type, key, res);
  }
}

function world(seed: number) {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const identities = new FakeIdentities();
  const resources = new FakeResources();
  const datapath = new MemoryDatapath();
  const endpoints: Endpoint[] = Array.from({ length: 8 }, (_, i) => ({
    epId: i + 1, containerId: `c${i}`, namespace: `ns-${i % 2}`, pod: `p${i}`, ip: `10.1.0.${i + 1}`, hostIf: `lxc${i}`, podIf: 'eth0', netns: '-', identity: 60_000 + i,
    labels: { app: `a${i % 3}`, tier: `t${i % 2}` }, namespaceLabels: {}, mac: '02:00:00:00:00:01', nodeMac: '02:00:00:00:00:02',
  }));
  const engine = new PolicyEngine(config, resources as unknown as ResourceSource, { cache: identities } as unknown as IdentityAllocator, datapath, () => endpoints, silentLogger());
  const policies = new Map<string, Policy>(); // in the engine's order: a re-applied policy keeps its place
  let nextId = 70_000;
  let nextPolicy = 0;

  const labels = (): LabelSet => {
    const namespace = pick(['ns-0', 'ns-1']);
    return workloadLabels({ cluster: r() < 0.9 ? CLUSTER : 'c2', namespace, labels: { app: pick(['a0', 'a1', 'a2']), tier: pick(['t0', 't1', 't2']) } });
  };
  const peerRule = (): Record<string, unknown> => {
    const rule: Record<string, unknown> = {};
    const x = r();
    if (x < 0.6) rule.fromEndpoints = [pick([{ matchLabels: { tier: pick(['t0', 't1', 't2']) } }, { matchLabels: { app: pick(['a0', 'a1', 'a2']) } }, { matchExpressions: [{ key: 'app', operator: 'In', values: ['a1', 'a2'] }] }])];
    else if (x < 0.8) rule.fromEntities = [pick(['cluster', 'world', 'host', 'all'])];
    else if (x < 0.9) rule.fromCIDR = [pick(['192.0.2.0/24', '198.51.100.0/24'])];
    if (r() < 0.6) rule.toPorts = [{ ports: [pick([{ port: '80', protocol: 'TCP' }, { port: '53' }, { port: '8000', endPort: 8007, protocol: 'TCP' }, { protocol: 'UDP' }])] }];
    return rule;
  };
  const egressRule = (): Record<string, unknown> => {
    const rule = peerRule();
    const rename: Record<string, string> = { fromEndpoints: 'toEndpoints', fromEntities: 'toEntities', fromCIDR: 'toCIDR' };
    return Object.fromEntries(Object.entries(rule).map(([k, v]) => [rename[k] ?? k, v]));
  };
  const policyResource = (name: string): Resource => {
    const spec: Record<string, unknown> = { endpointSelector: pick([{}, { matchLabels: { app: pick(['a0', 'a1', 'a2']) } }, { matchLabels: { tier: 't0' } }]) };
    const fields = ['ingress', 'ingressDeny', 'egress', 'egressDeny'] as const;
    for (const f of fields) if (r() < (f.endsWith('Deny') ? 0.3 : 0.6)) spec[f] = Array.from({ length: 1 + Math.floor(r() * 2) }, () => (f.startsWith('ingress') ? peerRule() : egressRule()));
    return { apiVersion: 'weft.io/v1', kind: 'WeftNetworkPolicy', metadata: { name, namespace: pick(['ns-0', 'ns-1']), labels: {}, annotations: {} }, spec } as unknown as Resource;
  };
  const key = (res: Resource): string => `WeftNetworkPolicy/${res.metadata.namespace}/${res.metadata.name}`;

  /** What resolveEndpoint says each endpoint's map holds, as `key deny rule` strings. */
  const oracle = (epId: number): string[] => {
    const ep = endpoints.find((e) => e.epId === epId)!;
    const view = { epId, namespace: ep.namespace, labels: endpointLabels(CLUSTER, ep) };
    const resolved = resolveEndpoint(view, [...policies.values()], { cluster: CLUSTER, identities: [...identities.byId].map(([id, l]) => ({ id, labels: l })), cidrIdentities: engine.cidrIdentities() });
    return resolved.entries.map((e) => `${e.egress ? 'out' : 'in'} ${e.identity} ${e.protocol} ${e.port ? `${e.port.port}/${e.port.bits}` : '*'} ${e.deny ? 'deny' : 'allow'} ${e.rule}`).sort();
  };
  const inMap = (epId: number): string[] =>
    (datapath.policies.get(epId) ?? []).map((e: PolicyMapEntry) => `${e.egress ? 'out' : 'in'} ${e.identity} ${e.protocol} ${e.port ? `${e.port.port}/${e.port.bits}` : '*'} ${e.deny ? 'deny' : 'allow'} ${engine.ruleName(e.ruleId)}`).sort();

  return {
    r, pick, identities, resources, datapath, endpoints, engine, policies, oracle, inMap, labels,
    addIdentity(): void {
      identities.set(nextId++, labels());
    },
    applyPolicy(name = `p${nextPolicy++}`): void {
      const res = policyResource(name);
      policies.set(key(res), parsePolicy(res, CLUSTER));
      resources.change('upsert', key(res), res);
    },
    deletePolicy(k: string): void {
      policies.delete(k);
      resources.change('delete', k, undefined);
    },
  };
}

describe('policy engine: per-rule updates equal a full resolution', () => {
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    it(`after random identity and policy changes (seed ${seed})`, async () => {
      const w = world(seed);
      for (let i = 0; i < 30; i++) w.addIdentity();
      await w.engine.start();
      for (let i = 0; i < 5; i++) w.applyPolicy();
      await w.engine.recomputeChanged();
      let resolutions = 0;
      const apply = w.engine.apply.bind(w.engine);
      w.engine.apply = async (ep: Endpoint) => {
        resolutions++;
        return apply(ep);
      };
      let updates = 0;
      let written = 0;
      const update = w.datapath.updateEndpointPolicy.bind(w.datapath);
      w.datapath.updateEndpointPolicy = async (ep, changes, rev) => {
        updates++;
        written += changes.upsert.length + changes.remove.length;
        return update(ep, changes, rev);
      };
      try {
        for (let step = 0; step < 120; step++) {
          const before = new Map(w.endpoints.map((e) => [e.epId, w.oracle(e.epId)]));
          resolutions = 0;
          updates = 0;
          written = 0;
          const identityChange = w.r() < 0.8;
          if (identityChange) {
            for (let n = 1 + Math.floor(w.r() * 3); n > 0; n--) {
              const ids = [...w.identities.byId.keys()];
              const x = w.r();
              if (x < 0.4 || ids.length === 0) w.addIdentity();
              else if (x < 0.7) w.identities.delete(w.pick(ids));
              else w.identities.set(w.pick(ids), w.labels());
            }
          } else {
            const keys = [...w.policies.keys()];
            const x = w.r();
            if (x < 0.3 && keys.length > 0) w.deletePolicy(w.pick(keys));
            else if (x < 0.6 && keys.length > 0) w.applyPolicy(w.pick(keys).split('/')[2]);
            else w.applyPolicy();
          }
          await w.engine.recomputeChanged();
          assert.deepEqual(w.engine.cidrIdentities().map((c) => c.cidr).sort(), policyCidrs([...w.policies.values()]), `seed ${seed} step ${step}: the CIDRs the policies name`);
          let distance = 0;
          for (const ep of w.endpoints) {
            const want = w.oracle(ep.epId);
            assert.deepEqual(w.inMap(ep.epId), want, `seed ${seed} step ${step}: endpoint ${ep.epId}`);
            assert.equal(w.engine.endpointState(ep.epId)?.entries, want.length);
            const was = new Set(before.get(ep.epId));
            const now = new Set(want);
            distance += [...now].filter((x) => !was.has(x)).length + [...was].filter((x) => !now.has(x)).length;
          }
          if (identityChange) {
            assert.equal(resolutions, 0, `seed ${seed} step ${step}: an identity change resolves no endpoint`);
            // An entry that changed rule (same key) counts twice in `distance`, once as written.
            assert.ok(written <= distance && written >= distance / 2, `seed ${seed} step ${step}: wrote ${written} entries for a difference of ${distance}`);
            if (distance === 0) assert.equal(updates, 0, `seed ${seed} step ${step}: nothing changed, nothing written`);
          }
        }
      } finally {
        await w.engine.stop();
      }
    });
  }
});
