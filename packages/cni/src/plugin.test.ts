import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:http';
import { ApiServer } from '@weft/agent/dist/api.js';
import { runPlugin } from './plugin.js';

const env = (over: Record<string, string>) => ({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc', CNI_NETNS: '/var/run/netns/p1', CNI_IFNAME: 'eth0', CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;K8S_POD_NAME=web', ...over });

describe('CNI plugin', () => {
  let dir: string;
  let server: Server;
  let socket: string;
  let lastBody: { command: string; args: Record<string, string> } | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-cni-'));
    socket = join(dir, 'agent.sock');
    // A real HTTP server on a unix socket standing in for the agent's API (the lab e2e tests use the real agent).
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
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
      [env({ CNI_NETNS: '' }), conf(), 4, /Missing environment variables: CNI_NETNS/],
      [env({ CNI_ARGS: '' }), conf(), 4, /K8S_POD_NAMESPACE and K8S_POD_NAME/],
      [env({ CNI_ARGS: 'K8S_POD_NAMESPACE=demo;K8S_POD_NAME=ghost' }), conf(), 100, /Unknown pod demo\/ghost/],
      [env({}), JSON.stringify({ cniVersion: '1.0.0', agentSocket: join(dir, 'nobody.sock') }), 11, /Cannot reach the agent/],
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
    const out = await runPlugin(env({ CNI_COMMAND: 'DEL' }), JSON.stringify({ cniVersion: '1.0.0', agentSocket: join(dir, 'nobody.sock') }));
    assert.equal(out.exitCode, 0);
  });

  it('treats an agent that is still starting as not running: ADD tries again later, DEL succeeds', async () => {
    // The agent's own API server as it is while the agent starts: health only, every other route 503.
    const starting = new ApiServer(join(dir, 'starting.sock'));
    starting.starting = true;
    await starting.start();
    try {
      const startingConf = JSON.stringify({ cniVersion: '1.0.0', agentSocket: starting.socketPath });
      const add = await runPlugin(env({}), startingConf);
      assert.equal(add.exitCode, 1);
      assert.equal(JSON.parse(add.stdout).code, 11, add.stdout);
      assert.match(JSON.parse(add.stdout).msg, /The agent is starting/);
      assert.equal((await runPlugin(env({ CNI_COMMAND: 'DEL' }), startingConf)).exitCode, 0);
    } finally {
      await starting.stop();
    }
  });
});
