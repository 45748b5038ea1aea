import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LabelSet } from '@weft/identity';
import { encodePolicyKey, encodePolicyValue, IPCACHE_F_LOCAL_ENDPOINT, IPCACHE_F_REMOTE_NODE, POLICY_KEY, POLICY_VALUE } from '@weft/datapath';
import { mapSizesOf, validateAgentConfig, podMtu, readEtcdTls, routerIp } from './config.js';
import { ipcacheRank } from './ipcache-writer.js';
import { revokes } from './policy-map-writer.js';
import { handshakeSince } from './wireguard-node.js';
import { AgentConfigError, IpamExhaustedError } from './errors.js';
import { CapturedFlow, enrich } from './flows.js';
import { Ipam } from './ipam.js';
import { parseEndpointRecord, parseNodeRecord } from '@weft/schema';
import { netnsName } from './endpoint-manager.js';

const base = { cluster: 'c1', clusterId: 1, node: 'c1-node1', etcd: ['10.99.1.2:2379'], nodeIp: '10.99.1.11', podCidr: '10.101.1.0/24', bpfDir: '/x' };

describe('agent configuration', () => {
  it('fills defaults and derives the pod MTU from the routing mode', () => {
    const c = validateAgentConfig(base);
    assert.equal(c.routing, 'vxlan');
    assert.equal(c.pinRoot, '/sys/fs/bpf/weft/c1-c1-node1');
    assert.equal(c.encryption, 'wireguard', 'encrypted by default');
    assert.equal(c.encryptionStrict, true, 'strict by default');
    assert.equal(c.underlayDevice, undefined, 'the underlay device is found at start (the one holding nodeIp)');
    assert.equal(validateAgentConfig({ ...base, underlayDevice: 'ul0' }).underlayDevice, 'ul0');
    // What remote clusters may not claim: discovered or standalone defaults unless configured.
    assert.deepEqual([c.serviceCidrs, c.underlayCidrs, c.remotePodCidrMinBits], [undefined, undefined, undefined]);
    assert.deepEqual(validateAgentConfig({ ...base, serviceCidrs: ['10.96.0.0/12'], underlayCidrs: ['10.99.0.0/16'], remotePodCidrMinBits: 20 }), { ...c, serviceCidrs: ['10.96.0.0/12'], underlayCidrs: ['10.99.0.0/16'], remotePodCidrMinBits: 20 });
    assert.equal(c.wireguardImplementation, 'auto', 'kernel WireGuard where the kernel has it');
    assert.equal(validateAgentConfig({ ...base, wireguardImplementation: 'userspace' }).wireguardImplementation, 'userspace');
    assert.equal(c.procSysNet, '/proc/sys/net');
    assert.equal(validateAgentConfig({ ...base, procSysNet: '/host/proc/sys/net' }).procSysNet, '/host/proc/sys/net', 'the chart\'s: a container\'s /proc/sys is read-only');
    assert.equal(podMtu(c), 1440, 'WireGuard carries pod packets as they are; VXLAN (50) only in the clear');
    assert.equal(podMtu({ ...c, routing: 'direct' }), 1440);
    assert.equal(podMtu({ ...c, encryption: 'ipsec' }), 1440, 'ESP carries pod packets as they are; VXLAN (50) only in the clear');
    assert.equal(podMtu({ ...c, routing: 'direct', encryption: 'ipsec' }), 1440);
    assert.equal(podMtu({ ...c, encryption: 'off' }), 1450);
    assert.equal(podMtu({ ...c, routing: 'direct', encryption: 'off' }), 1500);
    assert.equal(routerIp('10.101.1.0/24'), '10.101.1.1');
  });

  it('names the bad field', () => {
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ clusterId: 0 }, /clusterId: Cannot configure agent: cluster id 0 is out of range 1-255/],
      [{ nodeIp: '10.99.1' }, /nodeIp: "10.99.1" is not an IPv4 address/],
      [{ podCidr: '10.101.1.7/24' }, /podCidr: "10.101.1.7\/24" has host bits set/],
      [{ routing: 'gre' }, /routing: "gre" is not vxlan, geneve or direct/],
      [{ encryption: 'ipsec-ish' }, /encryption: "ipsec-ish" is not wireguard, ipsec or off/],
      [{ wireguardDevice: 'a-device-name-too-long' }, /wireguardDevice: .* must be 1-14 characters/],
      [{ wireguardImplementation: 'wireguard-go' }, /wireguardImplementation: "wireguard-go" is not auto, kernel or userspace/],
      [{ underlayDevice: 'eth0; rm -rf' }, /underlayDevice: "eth0; rm -rf" is not an interface name/],
      [{ etcd: [] }, /etcd: must be a non-empty list/],
      [{ cluster: 'Bad_Name' }, /cluster: "Bad_Name" must be 1-32 lowercase/],
      [{ underlayCidrs: ['10.99.0.1/16'] }, /underlayCidrs\[0\]: "10\.99\.0\.1\/16" has host bits set/],
      [{ serviceCidrs: '10.96.0.0/12' }, /serviceCidrs: must be a list of at most 64 IPv4 CIDRs/],
      [{ remotePodCidrMinBits: 33 }, /remotePodCidrMinBits: must be an integer 0-32/],
      [{ procSysNet: 'host/proc/sys/net' }, /procSysNet: "host\/proc\/sys\/net" is not an absolute path/],
    ];
    for (const [patch, message] of bad) {
      assert.throws(() => validateAgentConfig({ ...base, ...patch }), (err: unknown) => err instanceof AgentConfigError && message.test(err.message));
    }
  });

  it('takes etcdTls as three file paths, read at start; plain etcd without it', () => {
    assert.equal(validateAgentConfig(base).etcdTls, undefined);
    assert.equal(readEtcdTls(validateAgentConfig(base)), undefined, 'no etcdTls: plain connections, as in the lab');
    const files = { ca: '/etc/weft/etcd-tls/ca.crt', cert: '/etc/weft/etcd-tls/tls.crt', key: '/etc/weft/etcd-tls/tls.key' };
    assert.deepEqual(validateAgentConfig({ ...base, etcdTls: files }).etcdTls, files);
    const bad: Array<[unknown, RegExp]> = [
      ['/etc/ca.crt', /etcdTls: must be an object \{ca, cert, key\} of file paths/],
      [{ ca: '/a', cert: '/b' }, /etcdTls\.key: must be a non-empty file path/],
      [{ ca: '', cert: '/b', key: '/c' }, /etcdTls\.ca: must be a non-empty file path/],
      [{ ...files, cert: 7 }, /etcdTls\.cert: must be a non-empty file path/],
      [{ ...files, keyFile: '/d' }, /etcdTls\.keyFile: is not a key of etcdTls/],
    ];
    for (const [etcdTls, message] of bad) {
      assert.throws(() => validateAgentConfig({ ...base, etcdTls }), (err: unknown) => err instanceof AgentConfigError && message.test(err.message), String(message));
    }
    const dir = mkdtempSync(join(tmpdir(), 'weft-etcd-tls-'));
    try {
      for (const f of ['ca.crt', 'tls.crt']) writeFileSync(join(dir, f), `PEM of ${f}`);
      const config = validateAgentConfig({ ...base, etcdTls: { ca: join(dir, 'ca.crt'), cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key') } });
      assert.throws(() => readEtcdTls(config), (err: unknown) => err instanceof AgentConfigError && /etcdTls\.key: cannot read ".*tls\.key": ENOENT/.test(err.message));
      writeFileSync(join(dir, 'tls.key'), 'PEM of tls.key');
      assert.deepEqual(readEtcdTls(config), { ca: Buffer.from('PEM of ca.crt'), cert: Buffer.from('PEM of tls.crt'), key: Buffer.from('PEM of tls.key') });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('agent configuration: flow export', () => {
  const withExport = (exp: unknown) => validateAgentConfig({ ...base, observer: { export: exp } });

  it('takes Hubble\'s export options, with its defaults (10 MiB files, 5 backups, every flow, every field)', () => {
    assert.equal(validateAgentConfig(base).observer, undefined, 'no export unless configured');
    assert.deepEqual(withExport({ filePath: '/var/run/weft/flows/flows.json' }).observer!.export, { filePath: '/var/run/weft/flows/flows.json', fieldMask: [], allowList: [], denyList: [], fileMaxSizeMb: 10, fileMaxBackups: 5, fileCompress: false });
    const full = { filePath: '/var/log/weft/flows.json', fieldMask: ['time', 'verdict', 'source.pod'], allowList: [{ verdict: ['DROPPED'] }, { sourceNamespace: ['shop'] }], denyList: [{ destinationPort: [53] }], fileMaxSizeMb: 50, fileMaxBackups: 0, fileCompress: true };
    assert.deepEqual(withExport(full).observer!.export, full);
  });

  it('names the bad entry, down to a filter\'s field and a mask\'s path, when the configuration is read', () => {
    const bad: Array<[unknown, RegExp]> = [
      ['/var/run/weft/flows.json', /observer\.export: must be an object \{filePath, fieldMask, allowList, denyList, fileMaxSizeMb, fileMaxBackups, fileCompress\}/],
      [{}, /observer\.export\.filePath: undefined must be an absolute file path/],
      [{ filePath: 'flows.json' }, /observer\.export\.filePath: "flows\.json" must be an absolute file path/],
      [{ filePath: '/var/run/weft/flows/' }, /observer\.export\.filePath: "\/var\/run\/weft\/flows\/" must be an absolute file path/],
      [{ filePath: '/f.json', fileMaxSizeMb: 0 }, /observer\.export\.fileMaxSizeMb: 0 must be an integer 1-1024/],
      [{ filePath: '/f.json', fileMaxBackups: 5.5 }, /observer\.export\.fileMaxBackups: 5\.5 must be an integer 0-100/],
      [{ filePath: '/f.json', fileCompress: 'yes' }, /observer\.export\.fileCompress: "yes" must be true or false/],
      [{ filePath: '/f.json', fieldMask: 'verdict' }, /observer\.export\.fieldMask: must be a list/],
      [{ filePath: '/f.json', fieldMask: ['verdict', 'source.podname'] }, /observer\.export\.fieldMask\[1\]: "source\.podname": Endpoint has no field "podname" \(ip, port, identity, namespace, pod, labels, cluster\)/],
      [{ filePath: '/f.json', allowList: [{ verdict: ['DROPPED'] }, { sourceIp: ['10.0.0.300'] }] }, /observer\.export\.allowList\[1\]\.sourceIp: "10\.0\.0\.300": expected an IPv4 address or CIDR/],
      [{ filePath: '/f.json', denyList: [{ sourcePods: ['kube-system/'] }] }, /observer\.export\.denyList\[0\]\.sourcePods: \["kube-system\/"\]: is not a flow filter field/],
      [{ filePath: '/f.json', denyList: { verdict: ['DROPPED'] } }, /observer\.export\.denyList: must be a list/],
      [{ filePath: '/f.json', fileMaxSizeMB: 10 }, /observer\.export\.fileMaxSizeMB: is not a key of observer\.export/],
    ];
    for (const [exp, message] of bad) assert.throws(() => withExport(exp), (err: unknown) => err instanceof AgentConfigError && message.test(err.message), String(message));
    assert.throws(() => validateAgentConfig({ ...base, observer: { exporter: {} } }), /observer\.exporter: is not a key of observer \(bufferSize, listen, tls, export\)/);
  });
});

describe('agent configuration: the resource source', () => {
  const env = { WEFT_NODE_NAME: 'worker-7', WEFT_NODE_IP: '192.168.56.17' };
  const kube = { cluster: 'c1', clusterId: 1, etcd: ['10.99.1.2:2379'], bpfDir: '/x', source: 'kubernetes' };

  it('is standalone by default, and there ignores the environment', () => {
    const c = validateAgentConfig(base, 'test', env);
    assert.equal(c.source, 'standalone');
    assert.equal(c.node, 'c1-node1');
    assert.equal(c.podCidr, '10.101.1.0/24');
  });

  it('in kubernetes mode takes node and nodeIp from the pod environment and the pod CIDR from the Node later', () => {
    const c = validateAgentConfig({ ...kube, kubeconfig: '/etc/weft/kubeconfig' }, 'test', env);
    assert.equal(c.source, 'kubernetes');
    assert.equal(c.node, 'worker-7');
    assert.equal(c.nodeIp, '192.168.56.17');
    assert.equal(c.podCidr, '', 'read from Node.spec.podCIDRs at start');
    assert.equal(c.kubeconfig, '/etc/weft/kubeconfig');
    assert.equal(c.stateDir, '/var/run/weft/c1/worker-7');
    const bad: Array<[Record<string, unknown>, NodeJS.ProcessEnv, RegExp]> = [
      [kube, {}, /node: must be set: WEFT_NODE_NAME in the environment \(the chart sets it\) or node in the file/],
      [kube, { WEFT_NODE_NAME: 'w' }, /nodeIp: must be set: WEFT_NODE_IP/],
      [kube, { ...env, WEFT_NODE_IP: 'fe80::1' }, /nodeIp: "fe80::1" is not an IPv4 address/],
      [{ ...kube, podCidr: '10.101.1.0/24' }, env, /podCidr: comes from the Node \(spec.podCIDRs\) in kubernetes mode/],
      [{ ...kube, podRuntime: true }, env, /podRuntime: is the lab's stand-in for kubelet/],
      [{ ...kube, source: 'k8s' }, env, /source: "k8s" is not standalone or kubernetes/],
      [{ ...kube, kubeconfig: 7 }, env, /kubeconfig: must be a file path/],
    ];
    for (const [raw, e, message] of bad) {
      assert.throws(() => validateAgentConfig(raw, 'test', e), (err: unknown) => err instanceof AgentConfigError && message.test(err.message), String(message));
    }
  });
});

describe('agent configuration: map sizes', () => {
  it('defaults every sized map to the size bpf/lib/maps.h declares and takes the ones given', () => {
    assert.deepEqual(mapSizesOf(validateAgentConfig(base)), { ipcache: 524_288, endpoints: 65_536, policy: 262_144, ct: 262_144, lbServices: 262_144, lbBackends: 262_144 });
    const c = validateAgentConfig({ ...base, mapSizes: { ipcache: 1_000_000, ct: 1024 } });
    assert.equal(mapSizesOf(c).ipcache, 1_000_000);
    assert.equal(mapSizesOf(c).ct, 1024);
    assert.equal(mapSizesOf(c).policy, 262_144);
    assert.equal(mapSizesOf({}).endpoints, 65_536, 'a config built in code without mapSizes');
  });

  it('names the bad map size', () => {
    const bad: Array<[unknown, RegExp]> = [
      [[1, 2], /mapSizes: must be an object of entry counts by map \(ipcache, endpoints, policy, ct, lbServices, lbBackends\)/],
      [{ ipcahce: 10 }, /mapSizes\.ipcahce: is not a sized map/],
      [{ policy: 0 }, /mapSizes\.policy: 0 must be an integer 1-16777216/],
      [{ ct: 1.5 }, /mapSizes\.ct: 1.5 must be an integer/],
      [{ ipcache: '512k' }, /mapSizes\.ipcache: "512k" must be an integer/],
      [{ endpoints: 1 << 25 }, /mapSizes\.endpoints: 33554432 must be an integer 1-16777216/],
    ];
    for (const [mapSizes, message] of bad) {
      assert.throws(() => validateAgentConfig({ ...base, mapSizes }), (err: unknown) => err instanceof AgentConfigError && message.test(err.message), String(message));
    }
  });
});

describe('policy map writer: which changes take access away', () => {
  const key = (identity: number, protocol = 6): string => {
    const k = Buffer.alloc(POLICY_KEY.size);
    encodePolicyKey(k, 0, { epId: 1, egress: true, identity, protocol });
    return k.toString('hex');
  };
  const value = (deny: boolean): Buffer => {
    const v = Buffer.alloc(POLICY_VALUE.size);
    encodePolicyValue(v, 0, deny, 1);
    return v;
  };
  const flags = { ingressEnforced: true, egressEnforced: true, audit: false };
  const cur = (entries: Array<[number, boolean]>, f = flags) => ({ ...f, entries: new Map(entries.map(([id, deny]) => [key(id), value(deny).subarray(0, 8).toString('hex')])) });
  const want = (entries: Array<[number, boolean]>) => new Map(entries.map(([id, deny]) => [key(id), value(deny)]));

  it('only grants: a new allow, a removed deny, a deny turned allow, enforcement off, audit on, a new rule id', () => {
    assert.equal(revokes(cur([[1, false]]), want([[1, false], [2, false]]), flags), false);
    assert.equal(revokes(cur([[1, false], [3, true]]), want([[1, false]]), flags), false);
    assert.equal(revokes(cur([[3, true]]), want([[3, false]]), flags), false);
    assert.equal(revokes(cur([]), want([]), { ...flags, ingressEnforced: false }), false);
    assert.equal(revokes(cur([]), want([]), { ...flags, audit: true }), false);
    const renamed = want([[1, false]]);
    encodePolicyValue(renamed.get(key(1))!, 0, false, 7);
    assert.equal(revokes(cur([[1, false]]), renamed, flags), false);
  });

  it('takes away: a new deny, a removed allow, an allow turned deny, enforcement on, audit off', () => {
    assert.equal(revokes(cur([[1, false]]), want([[1, false], [2, true]]), flags), true);
    assert.equal(revokes(cur([[1, false], [2, false]]), want([[1, false]]), flags), true);
    assert.equal(revokes(cur([[1, false]]), want([[1, true]]), flags), true);
    assert.equal(revokes(cur([], { ...flags, egressEnforced: false }), want([]), flags), true);
    assert.equal(revokes(cur([], { ...flags, audit: true }), want([]), flags), true);
  });
});

describe('ipcache precedence', () => {
  it('puts local endpoints and nodes first, then CIDRs, then other pods', () => {
    assert.equal(ipcacheRank(32, IPCACHE_F_LOCAL_ENDPOINT), 0);
    assert.equal(ipcacheRank(32, IPCACHE_F_REMOTE_NODE), 0);
    assert.equal(ipcacheRank(24, 0), 1);
    assert.equal(ipcacheRank(0, 0), 1);
    assert.equal(ipcacheRank(32, 0), 2);
  });
});

describe('WireGuard handshake times', () => {
  it('counts a handshake as after a key change unless it surely came before, at the device\'s resolution', () => {
    const keyMs = 1_764_638_912_400;
    // The kernel reports whole seconds: the key change's own second may hold a later handshake.
    assert.equal(handshakeSince(1_764_638_912, 1, keyMs), true);
    assert.equal(handshakeSince(1_764_638_911, 1, keyMs), false);
    assert.equal(handshakeSince(1_764_638_913, 1, keyMs), true);
    // wireguard-go reports nanoseconds: exact.
    assert.equal(handshakeSince(1_764_638_912.3, 1e-9, keyMs), false);
    assert.equal(handshakeSince(1_764_638_912.5, 1e-9, keyMs), true);
  });
});

describe('IPAM', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'weft-ipam-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('hands out addresses after the gateway, idempotently per owner, and survives a restart', () => {
    const file = join(dir, 'ipam.json');
    const a = new Ipam('10.101.1.0/24', file);
    assert.equal(a.gateway, '10.101.1.1');
    assert.equal(a.allocate('demo/web/1'), '10.101.1.2');
    assert.equal(a.allocate('demo/web/1'), '10.101.1.2');
    assert.equal(a.allocate('demo/db/1'), '10.101.1.3');
    const restarted = new Ipam('10.101.1.0/24', file);
    assert.equal(restarted.ownerOf('10.101.1.3'), 'demo/db/1');
    assert.equal(restarted.release('demo/web/1'), '10.101.1.2');
    assert.equal(restarted.allocate('demo/new/1'), '10.101.1.4', 'a just-freed address is not the next one handed out');
  });

  it('reuses a freed address last: forward from the last one handed out, wrapping, across restarts', () => {
    const file = join(dir, 'ipam.json');
    const a = new Ipam('10.101.1.0/29', file); // pods: .2-.6
    for (let i = 0; i < 5; i++) a.allocate(`p${i}`);
    a.release('p0'); // .2
    a.release('p2'); // .4
    assert.equal(new Ipam('10.101.1.0/29', file).allocate('q0'), '10.101.1.2', 'after .6 the range wraps to the oldest free address');
    const b = new Ipam('10.101.1.0/29', file);
    assert.equal(b.allocate('q1'), '10.101.1.4');
    b.release('q1');
    b.release('p3'); // .5
    assert.equal(b.allocate('q2'), '10.101.1.5', 'the free address after the cursor, not the one just freed');
    assert.equal(b.allocate('q3'), '10.101.1.4');
  });

  it('reads the first state format (owners only) and continues after the highest address in use', () => {
    const file = join(dir, 'ipam.json');
    writeFileSync(file, JSON.stringify({ '10.101.1.2': 'a', '10.101.1.7': 'b' }));
    const a = new Ipam('10.101.1.0/24', file);
    assert.equal(a.ownerOf('10.101.1.7'), 'b');
    assert.equal(a.allocate('c'), '10.101.1.8');
  });

  it('reports exhaustion', () => {
    const a = new Ipam('10.101.1.0/29', join(dir, 'ipam.json'));
    for (let i = 0; i < 5; i++) a.allocate(`p${i}`);
    assert.throws(() => a.allocate('one-more'), (err: unknown) => err instanceof IpamExhaustedError && /all 5 addresses of 10.101.1.0\/29 are in use/.test(err.message));
  });
});

describe('cluster records', () => {
  it('accepts good records and explains bad ones', () => {
    const node = Buffer.from(JSON.stringify({ name: 'c1-node2', cluster: 'c1', ip: '10.99.1.12', podCidr: '10.101.2.0/24', routing: 'vxlan' }));
    assert.equal((parseNodeRecord(node, 'c1') as { name: string }).name, 'c1-node2');
    assert.equal(parseNodeRecord(node, 'c2'), 'cluster "c1" is not c2');
    assert.equal(parseNodeRecord(Buffer.from('{'), 'c1'), 'not JSON');
    const ep = { ip: '10.101.2.5', identity: 65_800, node: 'c1-node2', nodeIp: '10.99.1.12', namespace: 'demo', pod: 'web', labels: {} };
    assert.equal(typeof parseEndpointRecord(Buffer.from(JSON.stringify(ep)), 1), 'object');
    assert.equal(parseEndpointRecord(Buffer.from(JSON.stringify({ ...ep, identity: (2 << 16) | 300 })), 1), `identity ${(2 << 16) | 300} is not an identity of cluster 1`);
    assert.equal(parseEndpointRecord(Buffer.from(JSON.stringify({ ...ep, ip: 'x' })), 1), 'ip "x" is not IPv4');
  });

  it('accepts only named network namespaces from CNI', () => {
    assert.equal(netnsName('/var/run/netns/weft-c1-abc'), 'weft-c1-abc');
    assert.throws(() => netnsName('/proc/123/ns/net'), /Invalid CNI_NETNS "\/proc\/123\/ns\/net": must name a network namespace as \/var\/run\/netns\/NAME/);
  });
});

describe('flows', () => {
  const ctx = {
    cluster: 'c1',
    node: 'c1-node1',
    bootTimeNs: 0n,
    podByIp: (ip: string) => (ip === '10.101.1.2' ? { namespace: 'demo', pod: 'client' } : undefined),
    labelsOf: (id: number) => (id === 65_800 ? LabelSet.parse(['k8s:app=client']) : undefined),
    ruleName: (id: number) => (id === 3 ? 'WeftNetworkPolicy/demo/p#ingress#0' : undefined),
  };
  const sample = { timestampNs: 1_000_000n, srcIdentity: 65_800, dstIdentity: 2, saddr: '10.101.1.2', daddr: '10.99.255.250', sport: 40000, dport: 8081, protocol: 6, verdict: 2, dropReason: 1, point: 1, epId: 1, flags: 2, length: 60, ruleId: 0, tcpFlags: 0, servicePort: 0 };

  it('enriches datapath events with pods, labels and reasons', () => {
    const f = enrich(sample, ctx);
    assert.equal(f.verdict, 'DROPPED');
    assert.equal(f.dropReason, 'POLICY_DENIED');
    assert.equal(f.source!.pod, 'client');
    assert.deepEqual(f.source!.labels, ['k8s:app=client']);
    assert.equal(f.destination!.pod, '');
    assert.equal(f.cluster, 'c1');
    assert.equal(f.trafficDirection, 'EGRESS');
    assert.deepEqual(f.time, { seconds: 0, nanos: 1_000_000 });
    assert.equal(f.protocol, 'TCP');
    assert.equal(f.newConnection, true);
  });

  it('names drops on the underlay: clear pod traffic under strict WireGuard', () => {
    // A VXLAN packet sent to a node from the underlay, outside WireGuard: its own (outer) addresses.
    const f = enrich({ ...sample, saddr: '10.99.255.77', daddr: '10.99.1.11', srcIdentity: 2, dstIdentity: 1, protocol: 17, dport: 8472, dropReason: 13, point: 4, flags: 0x4, epId: 0 }, ctx);
    assert.equal(f.dropReason, 'UNENCRYPTED_INGRESS');
    assert.equal(f.point, 'from-underlay');
    assert.equal(f.tunneled, true);
    assert.equal(f.encrypted, false);
    assert.equal(enrich(sample, ctx).tunneled, false);
  });

  it('names ICMP errors let through as related, and later fragments dropped without their first', () => {
    const related = enrich({ ...sample, protocol: 1, sport: 0, dport: 0, verdict: 1, dropReason: 0, point: 2, flags: 0x10, ruleId: 3 }, ctx);
    assert.equal(related.related, true);
    assert.equal(related.newConnection, false);
    assert.equal(related.policy, 'WeftNetworkPolicy/demo/p#ingress#0', "the rule of the connection it is about");
    assert.equal(enrich(sample, ctx).related, false);
    assert.equal(enrich({ ...sample, protocol: 17, dropReason: 24, flags: 0 }, ctx).dropReason, 'FRAGMENT_NO_FIRST');
  });

  it('names the Service a packet was sent to and its TCP flags, when the event carries them', () => {
    const f = enrich({ ...sample, verdict: 1, dropReason: 0, tcpFlags: 0x02, serviceAddr: '10.96.0.10', servicePort: 80 } as typeof sample, { ...ctx, serviceAt: (ip, port, protocol) => (ip === '10.96.0.10' && port === 80 && protocol === 'TCP' ? { namespace: 'demo', name: 'web' } : undefined) });
    assert.deepEqual(f.destinationService, { namespace: 'demo', name: 'web', ip: '10.96.0.10', port: 80 });
    assert.equal(f.tcpFlags!.SYN, true);
    assert.equal(f.tcpFlags!.ACK, false);
    assert.equal(enrich(sample, ctx).destinationService, null);
  });

  it('takes what a flow needs when it happens and builds its Flow once, when read', () => {
    const pods = new Map([['10.101.1.2', { namespace: 'demo', pod: 'client' }]]);
    const rules = new Map([[3, 'WeftNetworkPolicy/demo/p#ingress#0']]);
    const live = { ...ctx, podByIp: (ip: string) => pods.get(ip), ruleName: (id: number) => rules.get(id) };
    const captured = new CapturedFlow({ ...sample, ruleId: 3 }, live);
    // The pod and the rule go (the address and the rule id may be someone else's next).
    pods.set('10.101.1.2', { namespace: 'other', pod: 'newcomer' });
    rules.delete(3);
    const f = captured.build();
    assert.equal(f.source!.pod, 'client');
    assert.equal(f.policy, 'WeftNetworkPolicy/demo/p#ingress#0');
    assert.equal(captured.build(), f, 'built once');
  });
});
