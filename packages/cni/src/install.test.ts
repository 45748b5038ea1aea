import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONFLIST_NAME, installCni, PLUGIN_NAME, uninstallCni } from './install.js';

/** Every file and directory under `dir`, relative, sorted. */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string): void => {
    for (const name of readdirSync(d).sort()) {
      out.push(join(rel, name));
      if (statSync(join(d, name)).isDirectory()) walk(join(d, name), join(rel, name));
    }
  };
  walk(dir, '');
  return out;
}

const mode = (path: string): number => statSync(path).mode & 0o777;

describe('CNI install', () => {
  let root: string;
  let binDir: string;
  let confDir: string;
  let fakeNode: string;

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'weft-cni-install-'));
    binDir = join(root, 'opt/cni/bin');
    confDir = join(root, 'etc/cni/net.d');
    mkdirSync(binDir, { recursive: true });
    mkdirSync(confDir, { recursive: true });
    // A stand-in for the 100 MB Node binary; the standalone test below copies the real one.
    fakeNode = join(root, 'node');
    writeFileSync(fakeNode, '#!/bin/sh\nexit 0\n');
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('writes the launcher, its payload and the conflist, whole and with their modes', () => {
    writeFileSync(join(binDir, 'bridge'), 'another plugin');
    const r = installCni({ binDir, confDir, socket: '/run/weft/agent.sock', node: fakeNode });
    assert.equal(r.plugin, join(binDir, PLUGIN_NAME));
    assert.equal(r.conflist, join(confDir, CONFLIST_NAME));
    assert.match(r.payload, /\/\.weft-cni-[0-9a-f]{12}$/);
    assert.equal(mode(r.plugin), 0o755);
    assert.equal(mode(join(r.payload, 'node')), 0o755);
    assert.equal(mode(join(r.payload, 'node_modules/@weft/cni/dist/main.js')), 0o644);
    assert.equal(mode(r.conflist), 0o644);
    const conf = JSON.parse(readFileSync(r.conflist, 'utf8'));
    assert.equal(conf.cniVersion, '1.0.0');
    assert.equal(conf.name, 'weft');
    assert.deepEqual(conf.plugins, [{ type: 'weft-cni', agentSocket: '/run/weft/agent.sock' }]);
    const script = readFileSync(r.plugin, 'utf8');
    assert.ok(script.startsWith('#!/bin/sh\n# weft-managed: '), script);
    assert.ok(script.includes(`exec "\${0%/*}/${r.payload.split('/').pop()}/node" `), script);
    // Nothing temporary is left, and the other plugin is untouched.
    assert.deepEqual(readdirSync(binDir).sort(), ['.weft-cni-' + r.payload.split('-').pop(), 'bridge', 'weft-cni'].sort());
    assert.deepEqual(readdirSync(confDir), [CONFLIST_NAME]);
    assert.equal(readFileSync(join(binDir, 'bridge'), 'utf8'), 'another plugin');
  });

  it('is idempotent, takes a new socket, and replaces an earlier payload', () => {
    const first = installCni({ binDir, confDir, node: fakeNode });
    const before = tree(root);
    const again = installCni({ binDir, confDir, node: fakeNode });
    assert.deepEqual(again, first);
    assert.deepEqual(tree(root), before);
    assert.equal(JSON.parse(readFileSync(first.conflist, 'utf8')).plugins[0].agentSocket, '/var/run/weft/agent.sock');
    installCni({ binDir, confDir, node: fakeNode, socket: '/var/run/weft/c1/n1/agent.sock' });
    assert.equal(JSON.parse(readFileSync(first.conflist, 'utf8')).plugins[0].agentSocket, '/var/run/weft/c1/n1/agent.sock');
    // An upgrade (here: another Node binary) gets a new payload; the old one goes, after the launcher moved.
    writeFileSync(fakeNode, '#!/bin/sh\nexit 0 # a newer node\n');
    const upgraded = installCni({ binDir, confDir, node: fakeNode });
    assert.notEqual(upgraded.payload, first.payload);
    assert.deepEqual(upgraded.removed, [first.payload]);
    assert.ok(!existsSync(first.payload));
    assert.ok(readFileSync(upgraded.plugin, 'utf8').includes(upgraded.payload.split('/').pop()!));
  });

  it('uninstalls exactly what it installed, and again finds nothing to do', () => {
    writeFileSync(join(binDir, 'bridge'), 'another plugin');
    writeFileSync(join(confDir, '10-other.conflist'), '{}');
    const before = tree(root);
    const r = installCni({ binDir, confDir, node: fakeNode });
    const u = uninstallCni({ binDir, confDir });
    assert.deepEqual(u.removed.sort(), [r.conflist, r.plugin, r.payload].sort());
    assert.deepEqual(u.skipped, []);
    assert.deepEqual(tree(root), before);
    assert.deepEqual(uninstallCni({ binDir, confDir }), { removed: [], skipped: [] });
    assert.deepEqual(uninstallCni({ binDir: join(root, 'nope'), confDir: join(root, 'nope2') }), { removed: [], skipped: [] });
  });

  it('leaves files it did not write, on install (refusing, writing nothing) and on uninstall', () => {
    for (const [path, text] of [
      [join(binDir, PLUGIN_NAME), '#!/bin/sh\necho someone else\n'],
      [join(confDir, CONFLIST_NAME), '{"cniVersion":"1.0.0","name":"other","plugins":[{"type":"weft-cni"}]}'],
    ] as const) {
      writeFileSync(path, text);
      const before = tree(root);
      assert.throws(() => installCni({ binDir, confDir, node: fakeNode }), (e: Error & { code?: string }) => e.code === 'WEFT_ERR_CNI_FILE_CONFLICT' && e.message.includes(path));
      assert.deepEqual(tree(root), before, 'nothing was written');
      assert.deepEqual(uninstallCni({ binDir, confDir }), { removed: [], skipped: [{ path, reason: 'not written by weft cni install' }] });
      assert.equal(readFileSync(path, 'utf8'), text);
      rmSync(path);
    }
    // A file someone else put into our payload directory stays, and so does the directory.
    const r = installCni({ binDir, confDir, node: fakeNode });
    writeFileSync(join(r.payload, 'notes.txt'), 'mine');
    const u = uninstallCni({ binDir, confDir });
    assert.deepEqual(u.skipped, [{ path: r.payload, reason: 'holds files weft did not write (ours were removed)' }]);
    assert.deepEqual(readdirSync(r.payload), ['notes.txt']);
  });

  it('refuses missing, non-directory and unwritable directories with a typed error', () => {
    const fails = (b: string, c: string, re: RegExp): void =>
      assert.throws(() => installCni({ binDir: b, confDir: c, node: fakeNode }), (e: Error & { code?: string }) => e.code === 'WEFT_ERR_CNI_INSTALL' && re.test(e.message));
    fails(join(root, 'missing'), confDir, /CNI bin directory .*missing does not exist \(ENOENT\)/);
    fails(binDir, join(root, 'missing'), /CNI conf directory .*missing does not exist/);
    fails(fakeNode, confDir, /is not a directory/);
    // Unwritable even for root: nothing can be created in /proc/self.
    fails('/proc/self', confDir, /\/proc\/self/);
    assert.throws(() => installCni({ binDir, confDir, node: fakeNode, socket: 'agent.sock' }), /not an absolute path/);
    if (process.getuid?.() !== 0) {
      chmodSync(confDir, 0o555);
      fails(binDir, confDir, /is not writable \(EACCES\)/);
      chmodSync(confDir, 0o755);
    }
    assert.deepEqual(readdirSync(confDir), [], 'no conflist without a plugin');
  });

  describe('the installed plugin', function () {
    this.timeout(60_000);
    let server: Server;
    let socket: string;
    let host: string;

    before(async () => {
      host = mkdtempSync(join(tmpdir(), 'weft-cni-host-'));
      socket = join(host, 'agent.sock');
      server = createServer((req, res) => {
        req.resume();
        req.on('end', () => res.writeHead(200).end(JSON.stringify({ ip: '10.101.1.7', gateway: '169.254.1.1', hostIf: 'lxc01', podIf: 'eth0', mac: '02:00:00:00:00:07' })));
      });
      await new Promise<void>((r) => server.listen(socket, () => r()));
    });
    after(async () => {
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(host, { recursive: true, force: true });
    });

    it('runs standalone from another directory, with the real Node and no PATH', async () => {
      const stage = join(host, 'stage');
      mkdirSync(join(stage, 'bin'), { recursive: true });
      mkdirSync(join(stage, 'net.d'));
      const r = installCni({ binDir: join(stage, 'bin'), confDir: join(stage, 'net.d'), socket });
      // What the runtime hands the plugin: the conflist's plugin entry with the list's cniVersion and name.
      const list = JSON.parse(readFileSync(r.conflist, 'utf8'));
      const conf = JSON.stringify({ cniVersion: list.cniVersion, name: list.name, ...list.plugins[0] });
      // As the host sees it: the directory at another path, nothing of the repository reachable.
      const bin = join(host, 'opt-cni-bin');
      cpSync(join(stage, 'bin'), bin, { recursive: true });
      rmSync(stage, { recursive: true });
      const run = (env: Record<string, string>, input: string): Promise<{ code: number; stdout: string }> =>
        new Promise((resolve) => {
          const child = execFile(join(bin, PLUGIN_NAME), [], { env: { PATH: '/nonexistent', ...env }, cwd: '/' }, (err, stdout) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout }));
          child.stdin!.end(input);
        });
      const version = await run({ CNI_COMMAND: 'VERSION' }, '');
      assert.equal(version.code, 0, version.stdout);
      assert.deepEqual(JSON.parse(version.stdout).supportedVersions, ['0.4.0', '1.0.0']);
      const add = await run({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/var/run/netns/p', CNI_IFNAME: 'eth0', CNI_ARGS: 'K8S_POD_NAMESPACE=demo;K8S_POD_NAME=web' }, conf);
      assert.equal(add.code, 0, add.stdout);
      assert.deepEqual(JSON.parse(add.stdout).ips, [{ address: '10.101.1.7/32', gateway: '169.254.1.1', interface: 1 }]);
    });
  });
});
