// End to end, as root: hostile CNI input against a real agent in a one-node lab, through the real
// plugin binary (as kubelet runs it) and straight to the agent's socket (bypassing the plugin).
// Each attack, if it got through, would leave evidence only root could leave: a file written by
// `ip -batch`'s `netns exec` (a command run as root on the host), or a link in the node's namespace.
'use strict';
const assert = require('node:assert/strict');
const { existsSync, mkdtempSync, rmSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { spawnSync } = require('node:child_process');
const { randomBytes } = require('node:crypto');
const { weft, weftJson, until, isRoot } = require('./helpers');

const PLUGIN = join(__dirname, '..', 'packages', 'cni', 'bin', 'weft-cni.js');

describe('hostile CNI input against a real agent (e2e, root)', function () {
  this.timeout(240_000);
  let dir;
  let socket;
  let podNs;
  let nodeNs;
  const marker = join(tmpdir(), `weft-e2e-cni-pwned-${randomBytes(4).toString('hex')}`);

  before(async function () {
    if (!isRoot()) return this.skip();
    dir = mkdtempSync(join(tmpdir(), 'weft-e2e-cni-'));
    const up = await weft(['lab', 'up', '--nodes', '1', '--no-demo']);
    assert.equal(up.code, 0, up.stderr);
    const file = join(dir, 'pod.yaml');
    writeFileSync(file, 'apiVersion: v1\nkind: Namespace\nmetadata: { name: cni }\n---\napiVersion: v1\nkind: Pod\nmetadata: { name: target, namespace: cni }\nspec:\n  containers:\n    - name: main\n      command: ["weft", "echo-server", "--tcp", "8080"]\n');
    const applied = await weft(['apply', '-f', file]);
    assert.equal(applied.code, 0, applied.stderr);
    await until(async () => (await weftJson(['endpoint', 'list'])).some((e) => e.pod === 'target'), 'the pod to be an endpoint', 30_000);
    const { readLabState, agentSocket } = require('@weft/lab');
    const { podNetnsName } = require('@weft/lab');
    const state = readLabState();
    const node = state.clusters[0].nodes[0];
    socket = agentSocket(node);
    nodeNs = node.netns;
    podNs = podNetnsName(state.clusters[0].name, 'cni', 'target');
  });

  after(async function () {
    if (!isRoot()) return;
    rmSync(marker, { force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
    const down = await weft(['lab', 'down']);
    assert.equal(down.code, 0, down.stderr);
  });

  const conf = () => JSON.stringify({ cniVersion: '1.0.0', name: 'weft', type: 'weft-cni', agentSocket: socket });
  const env = (over) => ({ ...process.env, CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'e2ehostile', CNI_NETNS: `/var/run/netns/${podNs}`, CNI_IFNAME: 'eth1', CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=cni;K8S_POD_NAME=target', CNI_PATH: join(PLUGIN, '..'), ...over });
  const plugin = (over) => {
    const r = spawnSync(process.execPath, [PLUGIN], { input: conf(), env: env(over), encoding: 'utf8' });
    return { status: r.status, out: r.stdout ? JSON.parse(r.stdout) : {} };
  };
  /** POST /v1/cni on the agent's socket, as the plugin would, but with whatever we like. */
  const direct = async (args) => {
    const { AgentClient, AgentApiError } = require('@weft/agent');
    try {
      await new AgentClient(socket).call('POST', '/v1/cni', { command: 'ADD', args: { containerId: 'e2ehostile', netnsPath: `/var/run/netns/${podNs}`, ifname: 'eth1', namespace: 'cni', pod: 'target', ...args } });
      return { ok: true };
    } catch (err) {
      assert.ok(err instanceof AgentApiError, String(err));
      return { ok: false, cniCode: err.cniCode, message: err.message };
    }
  };
  const nodeLinks = () => JSON.parse(spawnSync('ip', ['-n', nodeNs, '-j', 'link', 'show'], { encoding: 'utf8' }).stdout).map((l) => l.ifname);

  it('refuses an interface name carrying an ip -batch command, in the plugin and in the agent, and runs nothing', async () => {
    const attack = `eth1\nnetns exec ${podNs} touch ${marker}`;
    const viaPlugin = plugin({ CNI_IFNAME: attack });
    assert.equal(existsSync(marker), false, 'through the plugin, a command ran as root');
    const viaSocket = await direct({ ifname: attack });
    assert.equal(existsSync(marker), false, 'through the socket, a command ran as root');
    assert.equal(viaPlugin.status, 1);
    assert.equal(viaPlugin.out.code, 4, JSON.stringify(viaPlugin.out));
    assert.match(viaPlugin.out.msg, /^Invalid CNI_IFNAME "eth1\\nnetns exec /);
    assert.equal(viaSocket.ok, false, 'the agent refused it');
    assert.equal(viaSocket.cniCode, 4);
    assert.match(viaSocket.message, /^Invalid CNI_IFNAME/);
  });

  it('refuses a namespace path carrying an ip -batch command, and the node keeps its links', async () => {
    const before = nodeLinks();
    const attack = `/var/run/netns/${podNs}\nlink add wpwn0 type bridge`;
    const viaPlugin = plugin({ CNI_NETNS: attack });
    assert.deepEqual(nodeLinks(), before, 'through the plugin, a link was added in the node namespace');
    const viaSocket = await direct({ netnsPath: attack });
    assert.deepEqual(nodeLinks(), before, 'through the socket, a link was added in the node namespace');
    assert.equal(viaPlugin.out.code, 4, JSON.stringify(viaPlugin.out));
    assert.match(viaPlugin.out.msg, /^Invalid CNI_NETNS/);
    assert.equal(viaSocket.cniCode, 4, viaSocket.message);
  });

  it('still serves a valid request afterwards', async () => {
    const add = plugin({});
    assert.equal(add.status, 0, JSON.stringify(add.out));
    assert.equal(add.out.interfaces[1].name, 'eth1');
    const del = plugin({ CNI_COMMAND: 'DEL' });
    assert.equal(del.status, 0, JSON.stringify(del.out));
  });
});
