/**
 * bpf_lxc.o under BPF_PROG_TEST_RUN, for the privileged tests of the datapath's verdicts: the
 * object loaded through the real verifier with its maps pinned in a fresh pin root (sized as the
 * agent sizes them), crafted frames run through from_container and to_container, and verdicts
 * and drop reasons read from the programs' own flow events. Sends nothing on any interface (a
 * test run's skb is on loopback, ifindex 1, which the endpoints under test claim as their veth).
 * Whatever a test loads is undone by the cleanups it passes in.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  BpfMap,
  BpfObject,
  decodeFlowEvent,
  dropReasonName,
  encodeIpcacheKey,
  encodeIpcacheValue,
  encodeLbBackendKey,
  encodeLbKey,
  encodeLbValue,
  encodeNodeConfig,
  ensureBpffs,
  IPCACHE_F_EXACT,
  IPCACHE_KEY,
  IPCACHE_VALUE,
  ipv4ToInt,
  LbVipFilter,
  MapName,
  ROUTING_DIRECT,
  RingBufferReader,
  testRunTc,
  type FlowRecord,
} from '@weft/datapath';
import type { PolicyMapEntry } from '../datapath-port.js';
import type { EndpointSlot } from '../policy-map-writer.js';

export const IS_ROOT = process.getuid?.() === 0;
export const BPF_DIR = join(__dirname, '..', '..', '..', '..', 'bpf', 'build');
export const TC_ACT_OK = 0;
export const TC_ACT_SHOT = 2;
export const TCP = 6;
export const UDP = 17;
export const ICMP = 1;

/** Why a privileged suite cannot run here, or undefined when it can. */
export function cannotRun(): string | undefined {
  if (!IS_ROOT) return 'needs root for bpf(2) and bpffs';
  if (!existsSync(join(BPF_DIR, 'bpf_lxc.o'))) return 'needs bpf/build from `npm run build`';
  return undefined;
}

export interface LxcSuite {
  /** Random, per suite: names of what the suite creates (pin roots, links, etcd). */
  tag: string;
  /** Undone after each test, last first; a failing undo does not stop the others. */
  cleanups: Array<() => void>;
  /** A fresh pin root under /sys/fs/bpf (not created; removed after the test if it is). */
  root(): string;
  /** bpf_lxc.o pinned in a fresh root, small unless `sizes` says otherwise. */
  load(sizes?: Record<string, number>): LxcPrograms;
}

/**
 * Registers the hooks of a privileged suite in the calling `describe`: skipped with the reason when
 * it cannot run here, every cleanup run after each test.
 */
export function lxcSuite(prefix: string): LxcSuite {
  const tag = randomBytes(3).toString('hex');
  let seq = 0;
  const cleanups: Array<() => void> = [];
  before(function () {
    const why = cannotRun();
    if (why) {
      console.log(`    (skipped: ${why})`);
      return this.skip();
    }
    ensureBpffs();
  });
  afterEach(() => {
    for (let undo = cleanups.pop(); undo; undo = cleanups.pop()) {
      try {
        undo();
      } catch {
        // Keep cleaning up.
      }
    }
  });
  const root = (): string => {
    const path = `/sys/fs/bpf/${prefix}-${tag}-${++seq}`;
    cleanups.push(() => rmSync(path, { recursive: true, force: true }));
    return path;
  };
  return { tag, cleanups, root, load: (sizes = {}) => loadLxc(root(), sizes, cleanups) };
}

/** Ethernet + IPv4 + TCP/UDP (ports; TCP with the flags byte `tcpFlags`) or ICMP echo; enough for the programs' parser. */
export function frame(src: string, dst: string, protocol: number, sport: number, dport: number, tcpFlags = 0): Buffer {
  const l4 = protocol === TCP ? 20 : 8;
  const b = Buffer.alloc(14 + 20 + l4);
  b.writeUInt16BE(0x0800, 12);
  b[14] = 0x45;
  b.writeUInt16BE(20 + l4, 16);
  b[22] = 64;
  b[23] = protocol;
  b.writeUInt32BE(ipv4ToInt(src), 26);
  b.writeUInt32BE(ipv4ToInt(dst), 30);
  if (protocol === ICMP) {
    b[34] = 8;
    b.writeUInt16BE(dport, 38);
  } else {
    b.writeUInt16BE(sport, 34);
    b.writeUInt16BE(dport, 36);
    if (protocol === TCP) {
      b[46] = 0x50;
      b[47] = tcpFlags;
    }
  }
  return b;
}

export interface Verdict {
  ret: number;
  events: Array<FlowRecord & { reason: string }>;
}

export interface LxcPrograms {
  obj: BpfObject;
  root: string;
  map: (name: keyof typeof MapName) => BpfMap;
  run: (prog: 'from_container' | 'to_container', f: Buffer, mark?: number) => Verdict;
  setConfig: (flags: number) => void;
}

/** bpf_lxc.o with its maps pinned under `root` (which must not exist; the caller removes it), small unless `sizes` says otherwise. */
function loadLxc(root: string, sizes: Record<string, number>, cleanups: Array<() => void>): LxcPrograms {
  // Small everywhere: the test fills what it sizes, the rest only costs memory.
  const maxEntries = { [MapName.ct]: 1024, [MapName.endpoints]: 64, [MapName.lbServices]: 64, [MapName.lbBackends]: 64, ...sizes };
  const obj = BpfObject.open(join(BPF_DIR, 'bpf_lxc.o'), { pinRoot: root, maxEntries });
  cleanups.push(() => obj.close());
  obj.load();
  const reader = new RingBufferReader(obj.map(MapName.events));
  cleanups.push(() => reader.stop());
  const setConfig = (flags: number): void =>
    obj.map(MapName.config).update(Buffer.alloc(4), encodeNodeConfig({ nodeIp: ipv4ToInt('192.0.2.1'), tunnelIfindex: 0, routingMode: ROUTING_DIRECT, clusterId: 1, flags }));
  setConfig(0);
  return {
    obj,
    root,
    map: (name) => obj.map(MapName[name]),
    setConfig,
    run: (prog, f, mark = 0) => {
      reader.consume(() => undefined);
      const r = testRunTc(obj.programFd(prog), f, { mark });
      const events: Verdict['events'] = [];
      reader.consume((b) => {
        const e = decodeFlowEvent(b);
        events.push({ ...e, reason: e.dropReason ? dropReasonName(e.dropReason) : '' });
      });
      return { ret: r.retval, events };
    },
  };
}

export function expectDrop(v: Verdict, reason: string, what: string): void {
  assert.equal(v.ret, TC_ACT_SHOT, `${what}: dropped (got ${v.ret}, events ${v.events.map((e) => e.reason || 'forwarded').join(',')})`);
  assert.deepEqual(v.events.map((e) => e.reason), [reason], `${what}: one drop event, ${reason}`);
}

export function expectPass(v: Verdict, what: string): void {
  assert.equal(v.ret, TC_ACT_OK, `${what}: passed (got ${v.ret}, events ${v.events.map((e) => e.reason || 'forwarded').join(',')})`);
  assert.ok(v.events.every((e) => e.verdict === 1), `${what}: no drop event`);
}

/** An endpoint on "veth" loopback with identity 1000 + epId, enforcing nothing unless `o` says. */
export const slot = (epId: number, ip: string, o: Partial<EndpointSlot> = {}): EndpointSlot => ({
  epId,
  ip: ipv4ToInt(ip),
  ifindex: 1,
  identity: 1000 + epId,
  mac: '02:00:00:00:00:0a',
  nodeMac: '02:00:00:00:00:a0',
  ingressEnforced: false,
  egressEnforced: false,
  audit: false,
  ...o,
});

export const allow = (egress: boolean, identity: number, protocol = 0, port?: number): PolicyMapEntry => ({ egress, identity, protocol, deny: false, ruleId: 10 + identity, ...(port ? { port: { port, bits: 16 } } : {}) });
export const deny = (egress: boolean, identity: number, protocol = 0, port?: number): PolicyMapEntry => ({ ...allow(egress, identity, protocol, port), deny: true, ruleId: 90 });

/**
 * A TCP Service port with one backend, written as the agent writes it: the address's bit in
 * weft_lb_vips first (unless `bit: false`), then slot 1 (the backend), slot 0 (the count) and the
 * membership.
 */
export function frontend(dp: LxcPrograms, vip: number, port: number, backend: string, backendPort: number, o: { bit?: boolean } = {}): void {
  const f = { vip, port, protocol: TCP };
  if (o.bit !== false) new LbVipFilter(dp.map('lbVips')).admit([vip]);
  dp.map('lbServices').update(encodeLbKey(f, 1), encodeLbValue({ addr: ipv4ToInt(backend), port: backendPort, count: 0 }));
  dp.map('lbServices').update(encodeLbKey(f, 0), encodeLbValue({ addr: 0, port: 0, count: 1 }));
  const slotNo = Buffer.alloc(4);
  slotNo.writeUInt32LE(1);
  dp.map('lbBackends').update(encodeLbBackendKey(f, ipv4ToInt(backend), backendPort), slotNo);
}

/** A /32 ipcache entry written straight into the map (the policy tests do not exercise the ipcache). */
export function peer(ipcache: BpfMap, ip: string, identity: number): void {
  const k = Buffer.alloc(IPCACHE_KEY.size);
  const v = Buffer.alloc(IPCACHE_VALUE.size);
  encodeIpcacheKey(k, 0, ipv4ToInt(ip), 32);
  encodeIpcacheValue(v, 0, { identity, tunnelIp: 0, flags: IPCACHE_F_EXACT, clusterId: 1 });
  ipcache.update(k, v);
}
