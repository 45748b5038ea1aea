import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Ip, netns } from '@weft/net';
import { applyServiceRules } from './service-proxy.js';

describe('lab service proxy in a network namespace (root, real iptables)', function () {
  this.timeout(30_000);
  const ns = `wtsvc-${randomBytes(3).toString('hex')}`;
  const servers: ReturnType<typeof spawn>[] = [];

  before(async function () {
    if (process.getuid?.() !== 0) return this.skip();
    await netns.add(ns);
    const ip = new Ip(ns);
    await ip.setUp('lo');
    await ip.run(['link', 'add', 'dummy0', 'type', 'veth', 'peer', 'name', 'dummy1']);
    await ip.setUp('dummy1');
    await ip.addAddress('dummy0', '10.99.250.1/24');
    await ip.addAddress('dummy0', '10.99.250.2/24');
    await ip.setUp('dummy0');
    // The Service range is routed somewhere, as on a node; DNAT then sends it where it belongs.
    await ip.replaceRoute(['10.96.0.0/16', 'dev', 'dummy0']);
    for (const [addr, name] of [['10.99.250.1', 'one'], ['10.99.250.2', 'two']]) {
      const code = `require('net').createServer((s) => s.end('${name}')).listen(9379, '${addr}')`;
      servers.push(spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', code], { stdio: 'ignore' }));
    }
    await new Promise((r) => setTimeout(r, 500));
  });
  after(async () => {
    for (const s of servers) s.kill('SIGKILL');
    await netns.delete(ns);
  });

  const dial = (host: string): Promise<string> => new Promise((resolve) => {
    const code = `const s=require('net').connect(9379,'${host}');let d='';s.on('data',(b)=>d+=b);s.on('end',()=>{process.stdout.write(d,()=>process.exit())});s.on('error',(e)=>{process.stdout.write('error:'+e.code,()=>process.exit())});setTimeout(()=>{process.stdout.write('timeout',()=>process.exit())},3000).unref()`;
    const c = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', code]);
    let out = '';
    c.stdout.on('data', (b) => (out += b));
    c.on('close', () => resolve(out));
  });

  it('sends connections to a ClusterIP to its endpoints, both in turn, and follows a change', async () => {
    await applyServiceRules(ns, [{ service: 's/etcd:client', clusterIp: '10.96.0.20', port: 9379, protocol: 'tcp', endpoints: [{ ip: '10.99.250.1', port: 9379 }, { ip: '10.99.250.2', port: 9379 }] }]);
    const seen = new Set<string>();
    for (let i = 0; i < 40 && seen.size < 2; i++) seen.add(await dial('10.96.0.20'));
    assert.deepEqual([...seen].sort(), ['one', 'two']);
    // Rewritten whole: now only "two"; applying twice adds no second jump.
    await applyServiceRules(ns, [{ service: 's/etcd:client', clusterIp: '10.96.0.20', port: 9379, protocol: 'tcp', endpoints: [{ ip: '10.99.250.2', port: 9379 }] }]);
    for (let i = 0; i < 5; i++) assert.equal(await dial('10.96.0.20'), 'two');
    const { stdout } = await netns.exec(ns, ['iptables', '-w', '-t', 'nat', '-S', 'OUTPUT']);
    assert.equal(stdout.split('\n').filter((l) => l.includes('WEFT-LAB-SERVICES')).length, 1);
  });

  it('refuses at once a Service without endpoints', async () => {
    await applyServiceRules(ns, [{ service: 's/etcd:client', clusterIp: '10.96.0.20', port: 9379, protocol: 'tcp', endpoints: [] }]);
    assert.equal(await dial('10.96.0.20'), 'error:ECONNREFUSED');
  });

  it('answers a NodePort on the node\'s own address from an endpoint on another node, masqueraded so the answer comes back', async () => {
    // client (10.99.251.1) -> node (10.99.251.2 | 10.99.252.1) -> other node (10.99.252.2), which has no route back to the client.
    const [client, other] = [`wtcli-${randomBytes(3).toString('hex')}`, `wtoth-${randomBytes(3).toString('hex')}`];
    const server: ReturnType<typeof spawn>[] = [];
    try {
      for (const n of [client, other]) await netns.add(n);
      const node = new Ip(ns);
      await node.run(['link', 'add', 'np0', 'type', 'veth', 'peer', 'name', 'np1', 'netns', client]);
      await node.run(['link', 'add', 'np2', 'type', 'veth', 'peer', 'name', 'np3', 'netns', other]);
      for (const [ip, dev, addr] of [[node, 'np0', '10.99.251.2/24'], [new Ip(client), 'np1', '10.99.251.1/24'], [node, 'np2', '10.99.252.1/24'], [new Ip(other), 'np3', '10.99.252.2/24']] as const) {
        await ip.addAddress(dev, addr);
        await ip.setUp(dev);
      }
      await new Ip(other).setUp('lo');
      await netns.exec(ns, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
      const code = "require('net').createServer((s) => s.end('from ' + s.remoteAddress)).listen(9379, '10.99.252.2')";
      server.push(spawn('ip', ['netns', 'exec', other, process.execPath, '-e', code], { stdio: 'ignore' }));
      await new Promise((r) => setTimeout(r, 500));
      await applyServiceRules(ns, [{ service: 's/mesh:mesh', clusterIp: '10.96.0.30', port: 9379, protocol: 'tcp', nodePort: 32379, endpoints: [{ ip: '10.99.252.2', port: 9379 }] }]);
      const code2 = "const s=require('net').connect(32379,'10.99.251.2');let d='';s.on('data',(b)=>d+=b);s.on('end',()=>{process.stdout.write(d,()=>process.exit())});s.on('error',(e)=>{process.stdout.write('error:'+e.code,()=>process.exit())});setTimeout(()=>{process.stdout.write('timeout',()=>process.exit())},3000).unref()";
      const answer = await new Promise<string>((resolve) => {
        const c = spawn('ip', ['netns', 'exec', client, process.execPath, '-e', code2]);
        let out = '';
        c.stdout.on('data', (b) => (out += b));
        c.on('close', () => resolve(out));
      });
      assert.equal(answer, 'from 10.99.252.1', 'reached the endpoint from the node\'s address');
    } finally {
      for (const x of server) x.kill('SIGKILL');
      for (const n of [client, other]) await netns.delete(n);
    }
  });
});
