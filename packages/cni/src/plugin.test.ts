import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:http';
import { ApiServer } from '@weft/agent/api';
import { runPlugin } from './plugin.js';

const env = (over: Record<string, string>) => ({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc', CNI_NETNS: '/var/run/netns/p1', CNI_IFNAME: 'eth0', CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;K8S_POD_NAME=web', ...over });

describe('CNI plugin', () => {
  let dir: string;
  let server: Server;
  let socket: string;
  let lastBody: { command: string; args: Record<string, string> } | undefined;
  /** Requests the stand-in agent received: a refused request must never reach it. */
  let requests = 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-cni-'));
    socket = join(dir, 'agent.sock');
    // A real HTTP server on a unix socket standing in for the agent's API (the lab e2e tests use the real agent).
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        requests++;
        lastBody = JSON.parse(body) as typeof lastBody;
        if (lastBody!.args.pod === 'ghost') {
          res.writeHead(500).end(JSON.stringify({ error: { code: 'WEFT_ERR_CNI', message: 'Unknown pod demo/ghost', cniCode: 100 } }));
          return;
        }
        res.writeHead(200).end(JSON.stringify({ ip: '10.101.1.5', gateway: '169.254.1.1', hostIf: 'lxc0123', podIf: 'eth0', mac: '02:00:00:00:00:05' }));
      });
    });
    await new Promise<void>((r) => server.listen(socket, () => r()));
  });
  after(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  const conf = (): string => JSON.stringify({ cniVersion: '1.0.0', name: 'weft', type: 'weft-cni', agentSocket: socket });

  it('answers VERSION without a configuration', async () => {
    const out = await runPlugin({ CNI_COMMAND: 'VERSION' }, '');
    assert.deepEqual(JSON.parse(out.stdout), { cniVersion: '1.0.0', supportedVersions: ['0.4.0', '1.0.0'] });
  });

  it('asks the agent on ADD and prints the spec result', async () => {
    const out = await runPlugin(env({}), conf());
    assert.equal(out.exitCode, 0);
    assert.deepEqual(lastBody, { command: 'ADD', args: { containerId: 'abc', netnsPath: '/var/run/netns/p1', ifname: 'eth0', namespace: 'demo', pod: 'web' } });
    const r = JSON.parse(out.stdout);
    assert.equal(r.cniVersion, '1.0.0');
    assert.deepEqual(r.ips, [{ address: '10.101.1.5/32', gateway: '169.254.1.1', interface: 1 }]);
    assert.equal(r.interfaces[1].sandbox, '/var/run/netns/p1');
  });

  it('prints errors in the spec form', async () => {
    const cases: Array<[Record<string, string>, string, number, RegExp]> = [
      [env({}), '{not json', 6, /Cannot decode the network configuration/],
      [env({}), JSON.stringify({ cniVersion: '0.3.1', agentSocket: socket }), 1, /Unsupported cniVersion "0.3.1"/],
      [env({ CNI_NETNS: '' }), conf(), 4, /Missing CNI_NETNS \(required for ADD\)/],
      [env({ CNI_ARGS: '' }), conf(), 4, /Missing K8S_POD_NAMESPACE in CNI_ARGS \(required for ADD\)/],
      [env({ CNI_ARGS: 'K8S_POD_NAMESPACE=demo;K8S_POD_NAME=ghost' }), conf(), 100, /Unknown pod demo\/ghost/],
      [env({}), JSON.stringify({ cniVersion: '1.0.0', name: 'weft', agentSocket: join(dir, 'nobody.sock') }), 11, /Cannot reach the agent/],
    ];
    for (const [e, stdin, code, msg] of cases) {
      const out = await runPlugin(e, stdin);
      assert.equal(out.exitCode, 1);
      const err = JSON.parse(out.stdout);
      assert.equal(err.code, code, out.stdout);
      assert.match(err.msg, msg);
    }
  });

  it('lets DEL succeed when the agent is gone, so pod teardown never wedges', async () => {
    const out = await runPlugin(env({ CNI_COMMAND: 'DEL' }), JSON.stringify({ cniVersion: '1.0.0', name: 'weft', agentSocket: join(dir, 'nobody.sock') }));
    assert.equal(out.exitCode, 0);
  });

  it('treats an agent that is still starting as not running: ADD tries again later, DEL succeeds', async () => {
    // The agent's own API server as it is while the agent starts: health only, every other route 503.
    const starting = new ApiServer(join(dir, 'starting.sock'));
    starting.starting = true;
    await starting.start();
    try {
      const startingConf = JSON.stringify({ cniVersion: '1.0.0', name: 'weft', agentSocket: starting.socketPath });
      const add = await runPlugin(env({}), startingConf);
      assert.equal(add.exitCode, 1);
      assert.equal(JSON.parse(add.stdout).code, 11, add.stdout);
      assert.match(JSON.parse(add.stdout).msg, /The agent is starting/);
      assert.equal((await runPlugin(env({ CNI_COMMAND: 'DEL' }), startingConf)).exitCode, 0);
    } finally {
      await starting.stop();
    }
  });

  describe('hostile input (every value here would reach a root process)', () => {
    // Each string is something a runtime never sends and an attacker would: a newline starts a
    // second `ip -batch` command, a space splits an argument, '#' comments out the rest, quotes
    // and shell syntax, NUL, paths that climb, names past the kernel's limits.
    const IFNAMES = ['eth0\nlink del eth1', 'eth0 up', 'eth0\t', 'eth0\0', 'eth0\r', '.', '..', 'eth0123456789abc', 'eth/0', 'eth:0', '-eth0', 'eth0#', '"eth0"', "eth0'", 'eth0;reboot', '$(reboot)', '`id`', 'eth0\\', 'eth\u00e90', 'eth0\u2028'];
    const CONTAINER_IDS = ['abc\nlink del eth0', 'abc def', 'abc\0', '..', '../../etc/passwd', 'abc/def', '-abc', '.abc', 'a'.repeat(256), ';rm -rf /', '$(id)', 'abc#', 'abc\u00e9'];
    const NETNS = ['/var/run/netns/p1\nlink del eth0', '/var/run/netns/p1 p2', '/var/run/netns/p1\0', '/var/run/netns/p1\t', '/var/run/netns/../../etc/passwd', '/var/run/netns/./p1', 'var/run/netns/p1', 'p1', '/proc/1/ns/net', '/etc/passwd', `/var/run/netns/${'x'.repeat(300)}`, `/${'x/'.repeat(2100)}p1`, '/var/run/netns/-n', '/var/run/netns/$(id)', '/var/run/netns/p1;id', '/var/run/netns/p1#'];
    const CNI_ARGS = [
      'K8S_POD_NAMESPACE=demo;K8S_POD_NAME=web\nx',
      'K8S_POD_NAMESPACE=demo;K8S_POD_NAME=web;K8S_POD_NAME=other',
      'K8S_POD_NAMESPACE=demo;K8S_POD_NAME=web\0',
      'K8S_POD_NAMESPACE=demo;K8S_POD_NAME=we b',
      'K8S_POD_NAMESPACE=../demo;K8S_POD_NAME=web',
      'K8S_POD_NAMESPACE=de/mo;K8S_POD_NAME=web',
      'K8S_POD_NAMESPACE=Demo;K8S_POD_NAME=web',
      'K8S_POD_NAMESPACE=demo;K8S_POD_NAME=$(id)',
      'K8S_POD_NAMESPACE=demo;K8S_POD_NAME=web#',
      `K8S_POD_NAMESPACE=demo;K8S_POD_NAME=${'a'.repeat(254)}`,
      `K8S_POD_NAMESPACE=${'a'.repeat(64)};K8S_POD_NAME=web`,
      `K8S_POD_NAMESPACE=demo;K8S_POD_NAME=web;X=${'a'.repeat(5000)}`,
      'K8S_POD_NAMESPACE=demo;K8S_POD_NAME=web;K8S POD=1',
      'K8S_POD_NAMESPACE=demo;K8S_POD_NAME=web;=x',
      'K8S_POD_NAMESPACE=demo;K8S_POD_NAME=web=x',
    ];

    const refused = async (what: string, e: Record<string, string>, stdin: string, code: number, field: RegExp): Promise<void> => {
      const before = requests;
      const out = await runPlugin(e, stdin);
      assert.equal(out.exitCode, 1, `${what}: ${out.stdout}`);
      const err = JSON.parse(out.stdout) as Record<string, unknown>;
      assert.deepEqual(Object.keys(err).sort(), ['cniVersion', 'code', 'msg'], `${what}: the spec's error shape`);
      assert.equal(err.code, code, `${what}: ${out.stdout}`);
      assert.match(String(err.msg), field, what);
      assert.doesNotMatch(String(err.msg), /\n/, `${what}: the value is quoted, not printed raw`);
      assert.equal(requests, before, `${what} reached the agent`);
    };

    for (const command of ['ADD', 'DEL', 'CHECK']) {
      it(`refuses them on ${command} with error 4 naming the variable, before asking the agent`, async () => {
        for (const v of IFNAMES) await refused(`CNI_IFNAME ${JSON.stringify(v)}`, env({ CNI_COMMAND: command, CNI_IFNAME: v }), conf(), 4, /^Invalid CNI_IFNAME "/);
        for (const v of CONTAINER_IDS) await refused(`CNI_CONTAINERID ${JSON.stringify(v)}`, env({ CNI_COMMAND: command, CNI_CONTAINERID: v }), conf(), 4, /^Invalid CNI_CONTAINERID "/);
        for (const v of NETNS) await refused(`CNI_NETNS ${JSON.stringify(v)}`, env({ CNI_COMMAND: command, CNI_NETNS: v }), conf(), 4, /^Invalid CNI_NETNS "/);
        for (const v of CNI_ARGS) await refused(`CNI_ARGS ${JSON.stringify(v)}`, env({ CNI_COMMAND: command, CNI_ARGS: v }), conf(), 4, /^Invalid (CNI_ARGS|K8S_POD_(NAMESPACE|NAME) in CNI_ARGS) /);
        await refused('no CNI_CONTAINERID', env({ CNI_COMMAND: command, CNI_CONTAINERID: '' }), conf(), 4, /^Missing CNI_CONTAINERID/);
        await refused('no CNI_IFNAME', env({ CNI_COMMAND: command, CNI_IFNAME: '' }), conf(), 4, /^Missing CNI_IFNAME/);
      });
    }

    it('refuses a hostile network configuration on stdin with error 7 (or 6) naming the key', async () => {
      const cases: Array<[string, string, number, RegExp]> = [
        ['name with a newline', JSON.stringify({ cniVersion: '1.0.0', name: 'weft\nx', agentSocket: socket }), 7, /^Invalid network configuration: name "weft\\nx"/],
        ['name with a space', JSON.stringify({ cniVersion: '1.0.0', name: 'we ft', agentSocket: socket }), 7, /name "we ft"/],
        ['no name', JSON.stringify({ cniVersion: '1.0.0', agentSocket: socket }), 7, /name \(unset\) is required/],
        ['relative agentSocket', JSON.stringify({ cniVersion: '1.0.0', name: 'weft', agentSocket: 'agent.sock' }), 7, /agentSocket "agent\.sock" must be an absolute path/],
        ['agentSocket that climbs', JSON.stringify({ cniVersion: '1.0.0', name: 'weft', agentSocket: '/var/run/weft/../../tmp/evil.sock' }), 7, /agentSocket .* must not contain '\.' or '\.\.' components/],
        ['agentSocket with NUL', JSON.stringify({ cniVersion: '1.0.0', name: 'weft', agentSocket: '/var/run/weft/agent.sock\0x' }), 7, /agentSocket .* contains a control character/],
        ['agentSocket with a newline', JSON.stringify({ cniVersion: '1.0.0', name: 'weft', agentSocket: '/var/run/weft/agent.sock\nx' }), 7, /agentSocket .* contains a control character/],
        ['overlong agentSocket', JSON.stringify({ cniVersion: '1.0.0', name: 'weft', agentSocket: `/${'x'.repeat(120)}.sock` }), 7, /agentSocket .* is longer than 107 bytes/],
        ['agentSocket not a string', JSON.stringify({ cniVersion: '1.0.0', name: 'weft', agentSocket: ['/x'] }), 7, /agentSocket \(an array, not a string\)/],
        ['an array', '[]', 6, /not a JSON object/],
        ['null', 'null', 6, /not a JSON object/],
        ['overlong stdin', JSON.stringify({ cniVersion: '1.0.0', name: 'weft', agentSocket: socket, pad: 'x'.repeat(1 << 20) }), 7, /stdin is larger than 1048576 bytes/],
      ];
      for (const [what, stdin, code, msg] of cases) await refused(what, env({}), stdin, code, msg);
    });

    it('still accepts what runtimes send', async () => {
      const before = requests;
      for (const e of [
        env({ CNI_CONTAINERID: 'a'.repeat(64), CNI_NETNS: '/var/run/netns/cni-6b3f0e2a-1b2c-4d5e-8f90-123456789abc', CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns-5d78c9869d-x2x7k;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=1b6f0c2e-0d1a-4b59-9a43-0f2d1c3b4a5e' }),
        env({ CNI_NETNS: '/run/netns/p1', CNI_IFNAME: 'net1' }),
        env({ CNI_COMMAND: 'DEL', CNI_NETNS: '', CNI_ARGS: '' }),
      ]) {
        const out = await runPlugin(e, conf());
        assert.equal(out.exitCode, 0, out.stdout);
      }
      assert.equal(requests, before + 3);
    });
  });
});
