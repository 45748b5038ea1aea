/**
 * Full maps fail closed, on the real datapath: bpf_lxc.o loaded through the
 * verifier with small maps (the agent's own sizing), the agent's writers
 * filling them, and crafted packets run through from_container and
 * to_container with BPF_PROG_TEST_RUN; verdicts and drop reasons are read from
 * the programs' own flow events. Needs root (bpf(2), bpffs); sends nothing on
 * any interface (a test run's skb is on loopback, ifindex 1, which the
 * endpoints under test claim as their veth). Every pin root is removed after
 * its test.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@weft/common';
import {
  BpfMap,
  BpfObject,
  decodeEndpoint,
  decodePolicy,
  encodeEndpointKey,
  encodePolicyKey,
  encodePolicyValue,
  EP_F_FAIL_CLOSED,
  EP_F_POLICY_GEN,
  IPCACHE_F_EXACT,
  IPCACHE_F_LOCAL_ENDPOINT,
  IPCACHE_F_REMOTE_NODE,
  ipv4ToInt,
  MapName,
  NODE_F_IPCACHE_INCOMPLETE,
  NODE_CONFIG,
} from '@weft/datapath';
import { IdentityAllocator, workloadLabels } from '@weft/identity';
import { EtcdProcess, KvClient, until } from '@weft/kvstore';
import { ResourceStore, type Resource } from '@weft/resources';
import { BpfDatapath } from './bpf-datapath.js';
import { validateAgentConfig } from './config.js';
import type { Datapath, IpcacheUpsert, PolicyMapEntry } from './datapath-port.js';
import type { Endpoint } from './endpoint-manager.js';
import { MapFullError } from './errors.js';
import { PolicyEngine } from './policy-engine.js';
import { IpcacheWriter } from './ipcache-writer.js';
import { PolicyMapWriter } from './policy-map-writer.js';
import { allow, BPF_DIR, deny, expectDrop, expectPass, frame, ICMP, lxcSuite, peer, slot, TCP, UDP } from './testing/lxc-programs.js';

const WORLD = 2;

const configFlags = (m: BpfMap): number => m.lookup(Buffer.alloc(4))!.readUInt32LE(NODE_CONFIG.offsets.flags!);

describe('full maps fail closed (root, real programs)', function () {
  this.timeout(60_000);
  const suite = lxcSuite('wtfm');
  const { tag, cleanups } = suite;

  /** bpf_lxc.o with its maps pinned in a fresh pin root, sized as the agent sizes them. */
  const datapath = (sizes: Record<string, number>) => suite.load(sizes);

  describe('a full policy map', () => {
    const A = '10.0.0.1';
    const B = '10.0.0.2';
    const REMOTE = '10.0.1.5';
    const filler = (n: number): PolicyMapEntry[] => Array.from({ length: n }, (_, i) => allow(false, 5000 + i, TCP));

    it('applies a policy that takes access away whole, or fails the endpoint closed; the others keep theirs; room brings it back', () => {
      const dp = datapath({ [MapName.policy]: 8 });
      peer(dp.map('ipcache'), REMOTE, 2000);
      const writer = new PolicyMapWriter({ endpoints: dp.map('endpoints'), policy: dp.map('policy') }, silentLogger());
      const a = slot(1, A, { egressEnforced: true, ingressEnforced: true });
      const b = slot(2, B, { ingressEnforced: true });
      assert.equal(writer.program(a, [allow(true, 2000, TCP), allow(false, 2000, TCP)], 1).state, 'ok');
      assert.equal(writer.program(b, [allow(false, 2000, TCP), ...filler(3)], 1).state, 'ok');
      expectPass(dp.run('from_container', frame(A, REMOTE, TCP, 40000, 80)), 'A -> REMOTE:80 under the old policy (an established connection now)');
      expectPass(dp.run('from_container', frame(A, REMOTE, TCP, 40001, 443)), 'A -> REMOTE:443 under the old policy');

      // The new policy denies port 80 (listed last: a writer going entry by entry runs out of room before it).
      const next = [allow(true, 2000, TCP), allow(true, 2000, UDP), allow(true, 2000, ICMP), allow(false, 2000, TCP), deny(true, 2000, TCP, 80)];
      const out = writer.program(a, next, 2);
      assert.equal(out.state, 'fail-closed', JSON.stringify(out));
      assert.match(out.error!, /map weft_policy_v2 is full \(8 entries; 5 more needed; raise mapSizes.policy/);
      expectDrop(dp.run('from_container', frame(A, REMOTE, TCP, 40002, 80)), 'FAIL_CLOSED', 'A -> REMOTE:80, denied by the policy that did not fit');
      expectDrop(dp.run('from_container', frame(A, REMOTE, TCP, 40001, 443)), 'FAIL_CLOSED', 'A -> REMOTE:443, an established connection');
      expectDrop(dp.run('to_container', frame(REMOTE, A, TCP, 5555, 22)), 'FAIL_CLOSED', 'REMOTE -> A (its ingress too)');
      // Nothing half-written is left: only B's entries, and A's flag.
      const entries = dp.map('policy').entries().map(([k, v]) => decodePolicy(k, v));
      assert.deepEqual(entries.map((e) => e.epId).sort(), [2, 2, 2, 2], 'A has no entries left, of either generation');
      const epA = decodeEndpoint(encodeEndpointKey(ipv4ToInt(A)), dp.map('endpoints').lookup(encodeEndpointKey(ipv4ToInt(A)))!);
      assert.ok(epA.flags & EP_F_FAIL_CLOSED, 'A is marked fail-closed');
      // B is untouched.
      expectPass(dp.run('to_container', frame(REMOTE, B, TCP, 5555, 8080)), 'REMOTE -> B, allowed by B\'s policy');

      // A later try, with room (B goes away): A gets the whole new policy and leaves the fail-closed state.
      writer.remove(ipv4ToInt(B), 2);
      const again = writer.program(a, next, 3);
      assert.equal(again.state, 'ok', JSON.stringify(again));
      expectDrop(dp.run('from_container', frame(A, REMOTE, TCP, 40003, 80)), 'POLICY_DENY_RULE', 'A -> REMOTE:80 now meets the deny');
      expectPass(dp.run('from_container', frame(A, REMOTE, TCP, 40004, 443)), 'A -> REMOTE:443, still allowed');
      expectPass(dp.run('from_container', frame(A, REMOTE, UDP, 40005, 53)), 'A -> REMOTE UDP, newly allowed');
    });

    it('flips between generations in one update: established connections are checked against the new policy, the old generation is gone', () => {
      const dp = datapath({ [MapName.policy]: 16 });
      peer(dp.map('ipcache'), REMOTE, 2000);
      const writer = new PolicyMapWriter({ endpoints: dp.map('endpoints'), policy: dp.map('policy') }, silentLogger());
      const a = slot(1, A, { egressEnforced: true });
      assert.deepEqual(writer.program(a, [allow(true, 2000, TCP)], 1), { state: 'ok', changes: 1, gen: 0 });
      expectPass(dp.run('from_container', frame(A, REMOTE, TCP, 40000, 80)), 'a connection to port 80');
      const flipped = writer.program(a, [allow(true, 2000, TCP), deny(true, 2000, TCP, 80)], 2);
      assert.equal(flipped.state, 'ok');
      assert.equal(flipped.gen, 1, 'a revoking change moves to the other generation');
      expectDrop(dp.run('from_container', frame(A, REMOTE, TCP, 40000, 80)), 'POLICY_REVOKED', 'the established connection to port 80');
      const gens = dp.map('policy').entries().map(([k, v]) => decodePolicy(k, v).gen);
      assert.deepEqual(gens, [1, 1], 'only the generation in force is left');
      // A stray entry of the generation not in force (a crash in the middle of a write) is never looked up...
      const stray = Buffer.alloc(16);
      const sv = Buffer.alloc(24);
      encodePolicyKey(stray, 0, { epId: 1, egress: true, identity: 0, protocol: 0, gen: 0 });
      encodePolicyValue(sv, 0, false, 1);
      dp.map('policy').update(stray, sv);
      expectDrop(dp.run('from_container', frame(A, REMOTE, TCP, 40010, 80)), 'POLICY_DENY_RULE', 'an allow-all of the generation not in force changes nothing');
      // ... and a restarted agent's writer deletes it.
      const restarted = new PolicyMapWriter({ endpoints: dp.map('endpoints'), policy: dp.map('policy') }, silentLogger());
      assert.deepEqual(restarted.load(), { endpoints: 1, entries: 2, orphans: 1 });
      // A grant-only change stays in place (no flip).
      assert.equal(restarted.program(a, [allow(true, 2000, TCP), deny(true, 2000, TCP, 80), allow(true, 2000, UDP)], 3).gen, 1);
      const ep = decodeEndpoint(encodeEndpointKey(ipv4ToInt(A)), dp.map('endpoints').lookup(encodeEndpointKey(ipv4ToInt(A)))!);
      assert.equal(ep.flags & EP_F_POLICY_GEN, EP_F_POLICY_GEN);
      assert.equal(ep.policyRev, 3);
    });

    it('updates by difference in place: an identity added passes, an identity removed is re-checked and dropped, the generation stays', () => {
      const dp = datapath({ [MapName.policy]: 16 });
      peer(dp.map('ipcache'), REMOTE, 2000);
      peer(dp.map('ipcache'), '10.0.1.6', 3000);
      const writer = new PolicyMapWriter({ endpoints: dp.map('endpoints'), policy: dp.map('policy') }, silentLogger());
      const a = slot(1, A, { egressEnforced: true });
      assert.equal(writer.program(a, [allow(true, 2000, TCP)], 1).state, 'ok');
      expectPass(dp.run('from_container', frame(A, REMOTE, TCP, 40000, 80)), 'a connection to the allowed identity');
      expectDrop(dp.run('from_container', frame(A, '10.0.1.6', TCP, 40001, 80)), 'POLICY_DENIED', 'identity 3000, not selected yet');
      assert.deepEqual(writer.update(a, { upsert: [allow(true, 3000, TCP)], remove: [] }, 2), { state: 'ok', changes: 1, gen: 0 });
      expectPass(dp.run('from_container', frame(A, '10.0.1.6', TCP, 40002, 80)), 'identity 3000 once added');
      assert.deepEqual(writer.update(a, { upsert: [], remove: [allow(true, 2000, TCP)] }, 3), { state: 'ok', changes: 1, gen: 0 });
      expectDrop(dp.run('from_container', frame(A, REMOTE, TCP, 40000, 80)), 'POLICY_REVOKED', 'the established connection to the removed identity');
      assert.deepEqual(dp.map('policy').entries().map(([k, v]) => decodePolicy(k, v).identity), [3000]);
    });

    it('keeps the old policy in force when a change that only grants does not fit (stale), and never opens more', () => {
      const dp = datapath({ [MapName.policy]: 6 });
      peer(dp.map('ipcache'), REMOTE, 2000);
      peer(dp.map('ipcache'), '10.0.1.6', 3000);
      const writer = new PolicyMapWriter({ endpoints: dp.map('endpoints'), policy: dp.map('policy') }, silentLogger());
      const a = slot(1, A, { egressEnforced: true });
      assert.equal(writer.program(a, [allow(true, 2000, TCP), deny(true, 2000, TCP, 22)], 1).state, 'ok');
      assert.equal(writer.program(slot(2, B, { ingressEnforced: true }), filler(3), 1).state, 'ok');
      // New: the deny goes (grants port 22), identity 3000 is allowed TCP, UDP and ICMP (3 new entries; 2 free after the deny goes).
      const out = writer.program(a, [allow(true, 2000, TCP), allow(true, 3000, TCP), allow(true, 3000, UDP), allow(true, 3000, ICMP)], 2);
      assert.equal(out.state, 'stale', JSON.stringify(out));
      assert.match(out.error!, /the old policy stays in force without 3 new allow entries \(they only grant access\): map weft_policy_v2 is full/);
      expectPass(dp.run('from_container', frame(A, REMOTE, TCP, 40000, 443)), 'what the old policy allowed still passes');
      expectPass(dp.run('from_container', frame(A, REMOTE, TCP, 40001, 22)), 'the removed deny is gone (the new policy allows it)');
      expectDrop(dp.run('from_container', frame(A, '10.0.1.6', TCP, 40002, 80)), 'POLICY_DENIED', 'the new grant is missing, not more');
      const epA = decodeEndpoint(encodeEndpointKey(ipv4ToInt(A)), dp.map('endpoints').lookup(encodeEndpointKey(ipv4ToInt(A)))!);
      assert.equal(epA.flags & EP_F_FAIL_CLOSED, 0, 'not failed closed');
    });
  });

  describe('a full endpoints map', () => {
    it('refuses a new endpoint with a clear error and leaves none of its policy behind', () => {
      const dp = datapath({ [MapName.endpoints]: 2 });
      const writer = new PolicyMapWriter({ endpoints: dp.map('endpoints'), policy: dp.map('policy') }, silentLogger());
      writer.program(slot(1, '10.0.0.1'), [], 1);
      writer.program(slot(2, '10.0.0.2'), [], 1);
      assert.throws(() => writer.program(slot(3, '10.0.0.3', { ingressEnforced: true }), [allow(false, 2000)], 1), (err: unknown) => {
        assert.ok(err instanceof MapFullError);
        assert.equal(err.code, 'WEFT_ERR_MAP_FULL');
        assert.equal(err.message, 'Cannot add endpoint 10.0.0.3 to map weft_endpoints: it is full (2 entries); raise mapSizes.endpoints in the agent config');
        return true;
      });
      assert.deepEqual(dp.map('policy').entries(), [], 'its policy entries were removed again');
      assert.equal(writer.endpointCount, 2);
      expectDrop(dp.run('from_container', frame('10.0.0.3', '10.0.1.5', TCP, 40000, 80)), 'UNKNOWN_SOURCE', 'a pod without an entry sends nothing');
    });
  });

  describe('a full ipcache', () => {
    const A = '10.101.1.5';
    const nodes = ['10.99.1.11', '10.99.1.12', '10.99.1.13'];
    const node = (ip: string): IpcacheUpsert => ({ cidr: `${ip}/32`, identity: 6, flags: IPCACHE_F_REMOTE_NODE, clusterId: 1 });
    const local = (ip: string, identity: number): IpcacheUpsert => ({ cidr: `${ip}/32`, identity, flags: IPCACHE_F_LOCAL_ENDPOINT, clusterId: 1 });
    const pod = (ip: string, identity: number): IpcacheUpsert => ({ cidr: `${ip}/32`, identity, tunnelIp: '10.99.2.11', flags: 0, clusterId: 2 });
    const cidr = (c: string, identity: number): IpcacheUpsert => ({ cidr: c, identity, flags: 0, clusterId: 0 });

    function writerFor(dp: ReturnType<typeof datapath>): IpcacheWriter {
      let flags = 0;
      return new IpcacheWriter(dp.map('ipcache'), (on) => {
        flags = on ? flags | NODE_F_IPCACHE_INCOMPLETE : flags & ~NODE_F_IPCACHE_INCOMPLETE;
        dp.setConfig(flags);
      }, silentLogger());
    }

    it('does not turn a CIDR deny into world-allowed', () => {
      const dp = datapath({ [MapName.ipcache]: 4 });
      const policy = new PolicyMapWriter({ endpoints: dp.map('endpoints'), policy: dp.map('policy') }, silentLogger());
      // "egress to the world, except 8.8.8.0/24": the CIDR's identity is 0x100, its allow dropped for the deny (as the resolver does).
      policy.program(slot(1, A, { egressEnforced: true }), [allow(true, WORLD), allow(true, 9), allow(true, 10), deny(true, 0x100)], 1);
      // An endpoint that enforces nothing: unaffected by the ipcache's state.
      policy.program(slot(2, '10.101.1.6'), [], 1);
      const ipcache = writerFor(dp);
      const want = [...nodes.map(node), local(A, 1001), local('10.101.1.6', 1002), cidr('8.8.8.0/24', 0x100), pod('10.102.1.9', 70_000)];
      const r = ipcache.sync(want);
      assert.deepEqual(r, { added: 4, updated: 0, removed: 0, missing: 3 });
      assert.equal(ipcache.status().complete, false);
      assert.equal(configFlags(dp.map('config')) & NODE_F_IPCACHE_INCOMPLETE, NODE_F_IPCACHE_INCOMPLETE, 'the datapath is told');
      expectDrop(dp.run('from_container', frame(A, '8.8.8.8', UDP, 40000, 53)), 'IPCACHE_INCOMPLETE', 'A -> 8.8.8.8, denied by the CIDR entry that did not fit');
      expectDrop(dp.run('from_container', frame(A, '1.1.1.1', UDP, 40000, 53)), 'IPCACHE_INCOMPLETE', 'A -> 1.1.1.1: "world" cannot be told from a missing entry');
      expectPass(dp.run('from_container', frame('10.101.1.6', '8.8.8.8', UDP, 40000, 53)), 'an endpoint without egress policy');

      // The cluster shrinks: room for the CIDR and the pod; the ipcache is complete again.
      const smaller = want.filter((e) => e.cidr !== `${nodes[2]}/32` && e.cidr !== '10.101.1.6/32' && e.cidr !== '10.102.1.9/32');
      assert.deepEqual(ipcache.sync(smaller), { added: 1, updated: 0, removed: 1, missing: 0 });
      assert.equal(configFlags(dp.map('config')) & NODE_F_IPCACHE_INCOMPLETE, 0);
      expectDrop(dp.run('from_container', frame(A, '8.8.8.8', UDP, 40001, 53)), 'POLICY_DENY_RULE', 'A -> 8.8.8.8 meets the CIDR deny');
      expectPass(dp.run('from_container', frame(A, '1.1.1.1', UDP, 40001, 53)), 'A -> 1.1.1.1, the world, allowed');
    });

    it('does not let a remote pod a deny names fall through to an allowed CIDR; exact entries and marked identities still pass', () => {
      const dp = datapath({ [MapName.ipcache]: 6 });
      const policy = new PolicyMapWriter({ endpoints: dp.map('endpoints'), policy: dp.map('policy') }, silentLogger());
      // Ingress: from 10.0.0.0/8 (identity 0x101) allowed, except the pods of identity 70001; identity 70002 allowed.
      policy.program(slot(1, A, { ingressEnforced: true }), [allow(false, 0x101), deny(false, 70_001), allow(false, 70_002)], 1);
      const ipcache = writerFor(dp);
      // Pods in the order the cluster lists them: the denied one comes last and does not fit.
      const r = ipcache.sync([...nodes.map(node), local(A, 1001), cidr('10.0.0.0/8', 0x101), pod('10.102.1.8', 70_002), pod('10.102.1.7', 70_001)]);
      assert.deepEqual(r, { added: 6, updated: 0, removed: 0, missing: 1 });
      expectDrop(dp.run('to_container', frame('10.102.1.7', A, TCP, 5555, 8080)), 'IPCACHE_INCOMPLETE', 'the denied pod (no entry; 10.0.0.0/8 would allow it) -> A');
      expectPass(dp.run('to_container', frame('10.102.1.8', A, TCP, 5555, 8080)), 'a pod with an exact entry, allowed');
      // An identity carried in the mark (a local pod, the overlay) does not depend on the ipcache.
      expectPass(dp.run('to_container', frame('10.102.1.9', A, TCP, 5556, 8080), 0xab000000 | 70_002), 'identity from the mark');
      expectDrop(dp.run('to_container', frame('10.102.1.9', A, TCP, 5557, 8080), 0xab000000 | 70_001), 'POLICY_DENY_RULE', 'a denied identity from the mark');
    });

    it('makes room for local endpoints, nodes and CIDRs by leaving out remote pods', () => {
      const dp = datapath({ [MapName.ipcache]: 4 });
      const ipcache = writerFor(dp);
      const pods = [pod('10.102.1.1', 70_001), pod('10.102.1.2', 70_002), pod('10.102.1.3', 70_003), pod('10.102.1.4', 70_004)];
      assert.deepEqual(ipcache.sync(pods), { added: 4, updated: 0, removed: 0, missing: 0 });
      assert.equal(ipcache.status().complete, true);
      const r = ipcache.sync([...pods, local(A, 1001), node(nodes[0]!), cidr('8.8.8.0/24', 0x100)]);
      assert.deepEqual(r, { added: 3, updated: 0, removed: 0, missing: 3 });
      const held = dp.map('ipcache').entries().map(([k]) => `${[...k.subarray(4)].join('.')}/${k.readUInt32LE(0)}`).sort();
      assert.equal(held.length, 4);
      for (const c of [`${A}/32`, `${nodes[0]}/32`, '8.8.8.0/24']) assert.ok(held.includes(c), `${c} is in (${held.join(' ')})`);
      assert.equal(configFlags(dp.map('config')) & NODE_F_IPCACHE_INCOMPLETE, NODE_F_IPCACHE_INCOMPLETE);
      const exact = dp.map('ipcache').entries().map(([k, v]) => ({ prefix: k.readUInt32LE(0), flags: v.readUInt16LE(8) }));
      assert.ok(exact.every((e) => (e.prefix === 32) === ((e.flags & IPCACHE_F_EXACT) !== 0)), 'exactly the /32 entries are marked exact');
    });
  });

  describe('the policy engine, with a full policy map @etcd', () => {
    let etcd: EtcdProcess | undefined;
    let kv: KvClient | undefined;
    before(async function () {
      this.timeout(60_000);
      etcd = await EtcdProcess.start({ name: `wtfm-${tag}` });
      kv = new KvClient({ endpoints: [etcd.endpoint] });
    });
    after(async () => {
      kv?.close();
      await etcd?.stop();
    });

    it('fails one endpoint closed, programs the others, reports it, and retries until it fits', async function () {
      this.timeout(60_000);
      const dp = datapath({ [MapName.policy]: 10 });
      const writer = new PolicyMapWriter({ endpoints: dp.map('endpoints'), policy: dp.map('policy') }, silentLogger());
      // The agent's datapath port over the real writer; the endpoints' "veth" is loopback (test runs only, nothing attached).
      const port: Datapath = {
        programEndpoint: async (ep, entries, rev) =>
          writer.program({ epId: ep.epId, ip: ipv4ToInt(ep.ip), ifindex: 1, identity: ep.identity, mac: ep.mac, nodeMac: ep.nodeMac, ingressEnforced: ep.ingressEnforced, egressEnforced: ep.egressEnforced, audit: ep.audit }, entries, rev),
        updateEndpointPolicy: async (ep, changes, rev) =>
          writer.update({ epId: ep.epId, ip: ipv4ToInt(ep.ip), ifindex: 1, identity: ep.identity, mac: ep.mac, nodeMac: ep.nodeMac, ingressEnforced: ep.ingressEnforced, egressEnforced: ep.egressEnforced, audit: ep.audit }, changes, rev),
        removeEndpoint: async (ip, epId) => writer.remove(ipv4ToInt(ip), epId),
        syncPolicyCidrs: async () => undefined, // these policies name no CIDR
      } as Partial<Datapath> as Datapath;
      const config = validateAgentConfig({ cluster: 'c1', clusterId: 1, node: 'n1', etcd: [etcd!.endpoint], nodeIp: '192.0.2.1', podCidr: '10.101.1.0/24', bpfDir: BPF_DIR });
      const allocator = await new IdentityAllocator({ client: kv!, clusterId: 1, clusterName: 'c1', node: 'n1', logger: silentLogger() }).start();
      cleanups.push(() => void allocator.stop({ release: false }));
      const identity = async (labels: Record<string, string>): Promise<number> => (await allocator.allocate(workloadLabels({ cluster: 'c1', namespace: 'demo', labels }))).id;
      const ep = async (epId: number, pod: string, labels: Record<string, string>): Promise<Endpoint> => ({
        epId, containerId: pod, namespace: 'demo', pod, ip: `10.101.1.${epId + 10}`, hostIf: 'lo', podIf: 'eth0', netns: '-', identity: await identity(labels), labels, namespaceLabels: {}, mac: '02:00:00:00:00:0a', nodeMac: '02:00:00:00:00:a0',
      });
      const a = await ep(1, 'a', { app: 'a' });
      const b = await ep(2, 'b', { app: 'b' });
      const c = await ep(3, 'c', { app: 'c' });
      const peers: number[] = [];
      for (let i = 0; i < 7; i++) peers.push(await identity({ role: 'peer', n: String(i) }));
      peer(dp.map('ipcache'), '10.101.1.50', peers[0]!);
      const store = new ResourceStore(kv!);
      const policy = (name: string, spec: unknown): Resource => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace: 'demo', labels: {}, annotations: {} }, spec } as unknown as Resource);
      const ingressFrom = (app: string, peerNs: string[]) => ({
        podSelector: { matchLabels: { app } },
        policyTypes: ['Ingress'],
        ingress: [{ from: [{ podSelector: { matchLabels: { app: 'a' } } }, ...peerNs.map((n) => ({ podSelector: { matchLabels: { role: 'peer', n } } }))] }],
      });
      // B and C: two and three entries of a map of ten.
      await store.apply([policy('b', ingressFrom('b', ['0'])), policy('c', ingressFrom('c', ['0', '1']))]);
      const engine = new PolicyEngine(config, store, allocator, port, () => [a, b, c], silentLogger());
      cleanups.push(() => void engine.stop());
      await engine.start();
      engine.schedule();
      await until(() => engine.endpointState(2)?.state === 'ok' && engine.endpointState(3)?.state === 'ok', 'B and C programmed');

      // A gets seven entries (five are free) and B one more, together: A fails closed, B's change lands all the same.
      await store.apply([policy('a', { podSelector: { matchLabels: { app: 'a' } }, policyTypes: ['Egress'], egress: [{ to: [{ podSelector: { matchLabels: { role: 'peer' } } }] }] }), policy('b', ingressFrom('b', ['0', '1']))]);
      await until(() => engine.endpointState(1)?.state === 'fail-closed' && engine.endpointState(2)?.entries === 3, "A failed closed and B's change in force");
      assert.equal(engine.endpointState(2)!.state, 'ok');
      assert.match(engine.endpointState(1)!.error!, /its traffic is dropped: map weft_policy_v2 is full \(10 entries; 7 more needed/);
      assert.deepEqual(engine.failing().map((f) => [f.epId, f.state]), [[1, 'fail-closed']]);
      const owners = dp.map('policy').entries().map(([k, v]) => decodePolicy(k, v).epId);
      assert.deepEqual(owners.sort(), [2, 2, 2, 3, 3, 3], 'B and C in force, nothing of A');
      expectDrop(dp.run('from_container', frame(a.ip, '10.101.1.50', UDP, 40000, 53)), 'FAIL_CLOSED', 'A sends to a peer');
      expectPass(dp.run('to_container', frame(a.ip, b.ip, TCP, 40000, 80), 0xab000000 | a.identity), "B's ingress admits A");

      // C's policy goes away: room for A, which the engine's retry programs with nothing else changing.
      await store.delete([{ kind: 'NetworkPolicy', metadata: { name: 'c', namespace: 'demo' } }]);
      await until(() => engine.endpointState(1)?.state === 'ok', 'A retried and in force', 30_000);
      assert.deepEqual(engine.failing(), []);
      expectPass(dp.run('from_container', frame(a.ip, '10.101.1.50', UDP, 40001, 53)), 'A sends to a peer again');
      expectDrop(dp.run('from_container', frame(a.ip, '10.101.1.99', UDP, 40002, 53)), 'POLICY_DENIED', 'and only to its peers');
    });
  });

  describe('map sizes from the agent config', () => {
    it('creates the maps with the configured sizes, reports use, and replaces a pinned map of another size at restart', async () => {
      const root = suite.root();
      const stateDir = mkdtempSync(join(tmpdir(), 'wtfm-'));
      cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }));
      // Direct routing and no encryption: no device is created. The underlay guard needs a device that
      // holds the node IP: a veth pair of this test (this kernel has no dummy links), which carries no
      // traffic and takes its programs with it when deleted.
      const underlay = `wtfm-${tag}`;
      execFileSync('ip', ['link', 'add', underlay, 'type', 'veth', 'peer', 'name', `wtfp-${tag}`]);
      cleanups.push(() => execFileSync('ip', ['link', 'del', underlay]));
      execFileSync('ip', ['addr', 'add', '192.0.2.77/32', 'dev', underlay]);
      const config = (mapSizes: Record<string, number>) =>
        validateAgentConfig({ cluster: 'c1', clusterId: 1, node: `wtfm-${tag}`, etcd: ['127.0.0.1:1'], nodeIp: '192.0.2.77', podCidr: '10.101.1.0/24', routing: 'direct', encryption: 'off', underlayDevice: underlay, bpfDir: BPF_DIR, pinRoot: root, stateDir, mapSizes: { ct: 1024, lbServices: 128, lbBackends: 128, ...mapSizes } });
      // An old agent's map of the policy layout before the generation: unpinned at start.
      const scratch = `${root}-old`;
      cleanups.push(() => rmSync(scratch, { recursive: true, force: true }));
      const old = BpfObject.open(join(BPF_DIR, 'bpf_lxc.o'), { pinRoot: scratch, maxEntries: { [MapName.ct]: 1024 } });
      old.load();
      mkdirSync(root);
      old.map(MapName.policy).pin(join(root, 'weft_policy'));
      old.close();

      const first = new BpfDatapath(config({ ipcache: 64, policy: 32, endpoints: 16 }), silentLogger());
      cleanups.push(() => void first.stop());
      await first.start();
      assert.equal(existsSync(join(root, 'weft_policy')), false, 'the retired weft_policy pin is gone');
      const pinned = (name: string): number => {
        const m = BpfMap.openPinned(join(root, name));
        try {
          return m.maxEntries;
        } finally {
          m.close();
        }
      };
      assert.deepEqual([pinned(MapName.ipcache), pinned(MapName.policy), pinned(MapName.endpoints), pinned(MapName.ct)], [64, 32, 16, 1024]);
      const pods = Array.from({ length: 40 }, (_, i): IpcacheUpsert => ({ cidr: `10.102.0.${i + 1}/32`, identity: 70_000 + i, flags: 0, clusterId: 2 }));
      await first.syncIpcache(pods);
      const status = first.mapStatus();
      assert.deepEqual(status.find((m) => m.name === MapName.ipcache), { name: MapName.ipcache, maxEntries: 64, entries: 40 });
      assert.deepEqual(status.find((m) => m.name === MapName.ct), { name: MapName.ct, maxEntries: 1024, entries: 0 }, 'conntrack: the sum of the per-endpoint counts');
      await first.stop();

      // Restart with a smaller ipcache: the map is replaced, what fits copied, the rest distrusted until a sync.
      const second = new BpfDatapath(config({ ipcache: 16, policy: 32, endpoints: 16 }), silentLogger());
      cleanups.push(() => void second.stop());
      await second.start();
      assert.equal(pinned(MapName.ipcache), 16);
      assert.deepEqual(second.mapStatus().find((m) => m.name === MapName.ipcache), { name: MapName.ipcache, maxEntries: 16, entries: 16, resized: { from: 64, copied: 16, dropped: 24 } });
      const cfg = BpfMap.openPinned(join(root, MapName.config));
      cleanups.push(() => cfg.close());
      assert.equal(configFlags(cfg) & NODE_F_IPCACHE_INCOMPLETE, NODE_F_IPCACHE_INCOMPLETE, 'entries were dropped: distrusted at once');
      assert.deepEqual(second.ipcacheStatus().complete, false);
      const r = await second.syncIpcache(pods.slice(0, 10));
      assert.equal(r.missing, 0);
      assert.equal(second.ipcacheStatus().entries, 10);
      assert.equal(configFlags(cfg) & NODE_F_IPCACHE_INCOMPLETE, 0, 'complete again');
      await second.stop();
    });
  });
});
