/**
 * What a flow event carries beyond its verdict, on the real datapath: the TCP header's flags byte,
 * the Service a translated packet was sent to, and the count of events a full ring buffer lost.
 * bpf_lxc.o's programs run on crafted frames (BPF_PROG_TEST_RUN, nothing sent on any interface) and
 * their events are read from weft_events, by the test and by the agent's BpfDatapath. Needs root
 * (bpf(2), bpffs); every pin root and object is removed after each test, pass or fail.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger } from '@weft/common';
import {
  BpfObject,
  decodeFlowEvent,
  decodeFlowEventsLost,
  dropReasonName,
  encodeEndpointInfo,
  encodeEndpointKey,
  FlowFlag,
  ipv4ToInt,
  MapName,
  RingBufferReader,
  SIZED_MAPS,
  testRunTc,
  type SizedMap,
} from '@weft/datapath';
import { BpfDatapath } from './bpf-datapath.js';
import { mapSizesOf, validateAgentConfig } from './config.js';
import type { FlowSample } from './datapath-port.js';
import { PolicyMapWriter } from './policy-map-writer.js';
import { BPF_DIR, expectDrop, expectPass, frame, frontend, lxcSuite, peer, slot, TC_ACT_SHOT, TCP, UDP, type LxcPrograms } from './testing/lxc-programs.js';

const A = '10.0.0.1'; // the local endpoint under test (client)
const BACKEND = '10.1.0.5'; // a pod elsewhere, the Service's backend
const VIP = '10.96.0.10'; // the Service's ClusterIP
const STRANGER = '10.9.9.9'; // no endpoint of this node: its packets are UNKNOWN_SOURCE drops
const ID_BACKEND = 70_001;
const FIN = 0x01;
const SYN = 0x02;
const RST = 0x04;
const PSH = 0x08;
const ACK = 0x10;
/** Records of weft_events: the 56-byte flow_event behind the ring buffer's 8-byte header. */
const RING_BYTES = 1 << 20;
const RECORD_BYTES = 56 + 8;

describe('flow events: TCP flags, the Service, lost events counted (root, real programs)', function () {
  this.timeout(60_000);
  const suite = lxcSuite('wtfe');

  /** bpf_lxc.o with A (endpoint 1, enforcing nothing) and the backend in the ipcache. */
  function setup(): { dp: LxcPrograms; writer: PolicyMapWriter } {
    const dp = suite.load();
    const writer = new PolicyMapWriter({ endpoints: dp.map('endpoints'), policy: dp.map('policy') }, silentLogger());
    writer.program(slot(1, A), [], 1);
    peer(dp.map('ipcache'), BACKEND, ID_BACKEND);
    return { dp, writer };
  }

  it('carry the TCP header\'s flags byte as sent, 0 for UDP and for a header cut short', () => {
    const { dp, writer } = setup();
    const syn = dp.run('from_container', frame(A, BACKEND, TCP, 40000, 80, SYN));
    expectPass(syn, 'A -> backend, SYN');
    assert.equal(syn.events.length, 1, 'a new connection: one event');
    assert.equal(syn.events[0]!.flags & FlowFlag.new, FlowFlag.new);
    assert.equal(syn.events[0]!.tcpFlags, SYN, 'SYN alone');
    assert.deepEqual(dp.run('from_container', frame(A, BACKEND, TCP, 40000, 80, ACK)).events, [], 'the same connection\'s ACK: established, no event');
    // A connection first seen mid-stream (the agent restarted, conntrack flushed) is new: its event has the ACK.
    const ack = dp.run('from_container', frame(A, BACKEND, TCP, 40001, 80, ACK));
    assert.deepEqual(ack.events.map((e) => e.tcpFlags), [ACK], 'ACK alone, first seen: a new connection\'s event');
    const psh = dp.run('from_container', frame(A, BACKEND, TCP, 40002, 80, PSH | ACK));
    assert.deepEqual(psh.events.map((e) => e.tcpFlags), [PSH | ACK]);

    // Drops carry them too, every bit of the byte as in the header (ECE and CWR included).
    writer.program(slot(1, A, { egressEnforced: true }), [], 2);
    const all = dp.run('from_container', frame(A, BACKEND, TCP, 40003, 80, 0xff));
    expectDrop(all, 'POLICY_DENIED', 'A -> backend, egress enforced, nothing allowed');
    assert.equal(all.events[0]!.tcpFlags, 0xff);
    const finRst = dp.run('from_container', frame(A, BACKEND, TCP, 40004, 80, FIN | RST));
    assert.equal(finRst.events[0]!.tcpFlags, FIN | RST);

    const udp = dp.run('from_container', frame(A, BACKEND, UDP, 40005, 53));
    expectDrop(udp, 'POLICY_DENIED', 'UDP');
    assert.equal(udp.events[0]!.tcpFlags, 0, 'UDP: no TCP flags');
    const cut = frame(A, BACKEND, TCP, 40006, 80, SYN).subarray(0, 14 + 20 + 16);
    const short = dp.run('from_container', cut);
    expectDrop(short, 'INVALID_PACKET', 'a TCP header cut short of 20 bytes');
    assert.equal(short.events[0]!.tcpFlags, 0, 'a header the datapath did not read: 0');
  });

  it('name the Service a translated packet was sent to, and the one a dropped reply came back for', () => {
    const { dp, writer } = setup();
    frontend(dp, ipv4ToInt(VIP), 80, BACKEND, 8080);

    const syn = dp.run('from_container', frame(A, VIP, TCP, 40000, 80, SYN));
    expectPass(syn, 'A -> the Service');
    const e = syn.events[0]!;
    assert.deepEqual([e.daddr, e.dport], [ipv4ToInt(BACKEND), 8080], 'the destination is the backend');
    assert.deepEqual([e.serviceAddr, e.servicePort], [ipv4ToInt(VIP), 80], 'the Service the packet was sent to');
    assert.equal(e.tcpFlags, SYN);

    const direct = dp.run('from_container', frame(A, BACKEND, TCP, 40001, 8080, SYN));
    assert.deepEqual(direct.events.map((x) => [x.serviceAddr, x.servicePort]), [[0, 0]], 'straight to the backend: no Service');

    // Egress now enforced with nothing allowed (revision 2): a drop after translation names the Service...
    writer.program(slot(1, A, { egressEnforced: true }), [], 2);
    const denied = dp.run('from_container', frame(A, VIP, TCP, 40002, 80, SYN));
    expectDrop(denied, 'POLICY_DENIED', 'a new connection to the Service');
    assert.deepEqual([denied.events[0]!.daddr, denied.events[0]!.serviceAddr, denied.events[0]!.servicePort], [ipv4ToInt(BACKEND), ipv4ToInt(VIP), 80]);
    // ...and so does the reply of the first connection, re-checked under the new revision at A's veth
    // (before its source is given the Service address back: the backend is still the source).
    const reply = dp.run('to_container', frame(BACKEND, A, TCP, 8080, 40000, SYN | ACK));
    expectDrop(reply, 'POLICY_REVOKED', 'the Service\'s reply after the policy changed');
    const r = reply.events[0]!;
    assert.equal(r.flags & FlowFlag.reply, FlowFlag.reply);
    assert.deepEqual([r.saddr, r.sport, r.serviceAddr, r.servicePort, r.tcpFlags], [ipv4ToInt(BACKEND), 8080, ipv4ToInt(VIP), 80, SYN | ACK]);
  });

  it('count the events a full ring buffer loses: exactly produced - received, the ring holding the rest', () => {
    const dp = suite.load();
    const reader = new RingBufferReader(dp.map('events'));
    suite.cleanups.push(() => reader.stop());
    const lostMap = dp.map('eventsLost');
    const lost = (): bigint => decodeFlowEventsLost(lostMap.lookup(Buffer.alloc(4))!);
    assert.equal(lost(), 0n);

    // One UNKNOWN_SOURCE drop event per run, nothing drained in between: more than the ring holds.
    const capacity = Math.floor(RING_BYTES / RECORD_BYTES);
    const produced = capacity + 5000;
    const run = testRunTc(dp.obj.programFd('from_container'), frame(STRANGER, BACKEND, UDP, 1000, 53), { repeat: produced });
    assert.equal(run.retval, TC_ACT_SHOT);
    let received = 0;
    reader.consume((b) => {
      assert.equal(dropReasonName(decodeFlowEvent(b).dropReason), 'UNKNOWN_SOURCE');
      received++;
    });
    // The kernel refuses a record that would fill the ring to its last byte: it holds capacity - 1 (or, by another check, capacity).
    assert.ok(received === capacity - 1 || received === capacity, `received ${received} of ${produced}, the ring holds ${capacity - 1}-${capacity}`);
    assert.equal(lost(), BigInt(produced - received), 'every event that did not fit is counted, and only those');

    // Drained, the ring takes events again, and the count stays.
    const one = testRunTc(dp.obj.programFd('from_container'), frame(STRANGER, BACKEND, UDP, 1001, 53));
    assert.equal(one.retval, TC_ACT_SHOT);
    assert.equal(reader.consume(() => undefined), 1);
    assert.equal(lost(), BigInt(produced - received));
  });

  it('reach the agent: FlowSamples with the Service as a dotted string, and flowEventsLost() from the map', async () => {
    const root = suite.root();
    const stateDir = mkdtempSync(join(tmpdir(), 'wtfe-'));
    suite.cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }));
    const config = validateAgentConfig({ cluster: 'c1', clusterId: 1, node: `wtfe-${suite.tag}`, etcd: ['127.0.0.1:1'], nodeIp: '192.0.2.80', podCidr: '10.101.1.0/24', routing: 'direct', encryption: 'off', bpfDir: BPF_DIR, pinRoot: root, stateDir, mapSizes: { ct: 1024, lbServices: 256, lbBackends: 256 } });
    // No device: nothing is attached, the programs are run below on crafted frames.
    const agent = new BpfDatapath(config, silentLogger(), { underlay: false });
    suite.cleanups.push(() => void agent.stop());
    await agent.start();
    const samples: FlowSample[] = [];
    agent.onFlow((s) => samples.push(s));
    await agent.syncServices([{ vip: VIP, port: 80, protocol: 'TCP', backends: [{ ip: BACKEND, port: 8080 }] }]);

    // bpf_lxc.o once more on the agent's pins, sized as the agent sizes them: it shares its maps, as
    // a restarted agent's programs would, and its programs' fds are the test's to run.
    const sizes = mapSizesOf(config);
    const maxEntries = Object.fromEntries((Object.keys(SIZED_MAPS) as SizedMap[]).map((k) => [MapName[k], sizes[k]]));
    const lxc = BpfObject.open(join(BPF_DIR, 'bpf_lxc.o'), { pinRoot: root, maxEntries });
    suite.cleanups.push(() => lxc.close());
    lxc.load();
    assert.deepEqual(lxc.resized, [], 'the agent\'s pins, reused as they are');
    lxc.map(MapName.endpoints).update(encodeEndpointKey(ipv4ToInt(A)), encodeEndpointInfo({ ip: ipv4ToInt(A), ifindex: 1, epId: 1, flags: 0, identity: 1001, policyRev: 1, mac: '02:00:00:00:00:0a', nodeMac: '02:00:00:00:00:a0' }));
    const from = lxc.programFd('from_container');

    const until = async (what: string, done: () => boolean): Promise<void> => {
      for (let i = 0; i < 200 && !done(); i++) await sleep(20);
      assert.ok(done(), `${what} (${samples.length} samples)`);
    };
    testRunTc(from, frame(A, VIP, TCP, 40000, 80, SYN));
    testRunTc(from, frame(A, BACKEND, TCP, 40001, 8080, SYN));
    await until('both events reach the agent\'s listener', () => samples.length >= 2);
    const [toService, direct] = samples;
    assert.deepEqual([toService!.daddr, toService!.dport, toService!.serviceAddr, toService!.servicePort, toService!.tcpFlags], [BACKEND, 8080, VIP, 80, SYN]);
    assert.equal(direct!.serviceAddr, undefined, 'no Service: undefined');
    assert.deepEqual([direct!.servicePort, direct!.tcpFlags], [0, SYN]);
    assert.equal(await agent.flowEventsLost(), 0n);

    // The agent drains on a timer; one test run of more than the ring holds overflows it in between.
    samples.length = 0;
    const produced = Math.floor(RING_BYTES / RECORD_BYTES) + 3000;
    testRunTc(from, frame(STRANGER, BACKEND, UDP, 1000, 53), { repeat: produced });
    const lostNow = await agent.flowEventsLost();
    assert.ok(lostNow > 0n, 'some events lost');
    await until('every event either delivered or counted lost', () => BigInt(samples.length) + lostNow === BigInt(produced));
    assert.ok(samples.every((s) => dropReasonName(s.dropReason) === 'UNKNOWN_SOURCE' && s.serviceAddr === undefined));
  });
});
