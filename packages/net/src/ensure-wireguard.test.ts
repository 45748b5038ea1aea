import assert from 'node:assert/strict';
import { ensureWireGuard } from './ensure-wireguard.js';
import { KernelWireGuardUnavailableError, NetCommandError, WireGuardError } from './errors.js';
import type { WireGuardDevice } from './wireguard.js';

/**
 * A fake `ip` for one device name: `kind` is the existing link's info_kind
 * (undefined: no link), `addFails` what `ip link add` answers, if it fails.
 */
function fakeIp(state: { kind?: string; addFails?: string }) {
  const argvs: string[][] = [];
  const started: string[] = [];
  const exec = async (argv: string[]): Promise<string> => {
    argvs.push(argv);
    const cmd = argv.join(' ');
    if (cmd.startsWith('ip -d -j link show dev ')) {
      if (state.kind === undefined) throw new NetCommandError(argv, 1, `Device "${argv[argv.length - 1]}" does not exist.\n`);
      return JSON.stringify([{ ifname: argv[argv.length - 1], ...(state.kind ? { linkinfo: { info_kind: state.kind } } : {}) }]);
    }
    if (cmd.startsWith('ip link add ')) {
      if (state.addFails) throw new NetCommandError(argv, 2, state.addFails);
      state.kind = 'wireguard';
      return '';
    }
    if (cmd.startsWith('ip link del ')) {
      state.kind = undefined;
      return '';
    }
    throw new Error(`unexpected command ${cmd}`);
  };
  const userspace = async (ifname: string): Promise<WireGuardDevice> => {
    started.push(ifname);
    return { ifname, implementation: 'userspace' } as WireGuardDevice;
  };
  return { argvs, started, exec, userspace };
}

describe('ensureWireGuard: kernel where the kernel has it, wireguard-go otherwise', () => {
  it('auto: creates a kernel device', async () => {
    const f = fakeIp({});
    const dev = await ensureWireGuard('weftwg1n1', { exec: f.exec, userspace: f.userspace });
    assert.equal(dev.implementation, 'kernel');
    assert.equal(dev.ifname, 'weftwg1n1');
    assert.deepEqual(f.argvs[1], ['ip', 'link', 'add', 'weftwg1n1', 'type', 'wireguard']);
    assert.deepEqual(f.started, []);
  });

  it('auto and kernel: reuse an existing kernel device (a restarted agent keeps its sessions)', async () => {
    for (const implementation of ['auto', 'kernel'] as const) {
      const f = fakeIp({ kind: 'wireguard' });
      const dev = await ensureWireGuard('weftwg1n1', { implementation, exec: f.exec, userspace: f.userspace });
      assert.equal(dev.implementation, 'kernel');
      assert.equal(f.argvs.length, 1, 'only looked, created nothing');
    }
  });

  for (const answer of ['Error: Unknown device type.\n', 'RTNETLINK answers: Operation not supported\n']) {
    it(`auto: falls back to wireguard-go when the kernel answers ${JSON.stringify(answer.trim())}`, async () => {
      const f = fakeIp({ addFails: answer });
      const dev = await ensureWireGuard('weftwg1n1', { exec: f.exec, userspace: f.userspace });
      assert.equal(dev.implementation, 'userspace');
      assert.deepEqual(f.started, ['weftwg1n1']);
    });

    it(`kernel: a typed error when the kernel answers ${JSON.stringify(answer.trim())}`, async () => {
      const f = fakeIp({ addFails: answer });
      await assert.rejects(ensureWireGuard('weftwg1n1', { implementation: 'kernel', exec: f.exec, userspace: f.userspace }), (e: unknown) => {
        assert.ok(e instanceof KernelWireGuardUnavailableError);
        assert.equal(e.code, 'WEFT_ERR_KERNEL_WIREGUARD_UNAVAILABLE');
        assert.match(e.message, /Cannot create kernel WireGuard device weftwg1n1: this kernel has no WireGuard \(ip link add answered ".+"\); load the wireguard module/);
        return true;
      });
      assert.deepEqual(f.started, [], 'no fallback when the kernel was asked for');
    });
  }

  it('auto: any other failure is an error, not a silent fallback', async () => {
    const f = fakeIp({ addFails: 'RTNETLINK answers: Operation not permitted\n' });
    await assert.rejects(ensureWireGuard('weftwg1n1', { exec: f.exec, userspace: f.userspace }), (e: unknown) => e instanceof WireGuardError && /Cannot create kernel WireGuard device weftwg1n1: RTNETLINK answers: Operation not permitted/.test((e as Error).message));
    assert.deepEqual(f.started, []);
  });

  it('userspace: starts wireguard-go without trying the kernel, replacing a kernel device of the name', async () => {
    const f = fakeIp({});
    assert.equal((await ensureWireGuard('weftwg1n1', { implementation: 'userspace', exec: f.exec, userspace: f.userspace })).implementation, 'userspace');
    assert.ok(!f.argvs.some((a) => a.includes('add')));
    const k = fakeIp({ kind: 'wireguard' });
    assert.equal((await ensureWireGuard('weftwg1n1', { implementation: 'userspace', exec: k.exec, userspace: k.userspace })).implementation, 'userspace');
    assert.deepEqual(k.argvs[1], ['ip', 'link', 'del', 'weftwg1n1']);
  });

  it('never touches a device of another kind under the name', async () => {
    // A name no wireguard-go on this machine answers for (a TUN device is wireguard-go's only if its socket answers).
    const name = `wtne${process.pid % 100000}`;
    for (const kind of ['dummy', 'tun', '']) {
      const f = fakeIp({ kind });
      await assert.rejects(ensureWireGuard(name, { exec: f.exec, userspace: f.userspace }), (e: unknown) => e instanceof WireGuardError && new RegExp(`a .*device of that name exists and is not WireGuard; delete it \\(ip link del ${name}\\)`).test((e as Error).message));
      assert.equal(f.argvs.length, 1);
    }
  });

  it('refuses an unknown implementation and a bad name before touching anything', async () => {
    const f = fakeIp({});
    await assert.rejects(ensureWireGuard('weftwg1n1', { implementation: 'fast' as never, exec: f.exec }), /Invalid WireGuard implementation "fast": auto, kernel or userspace/);
    await assert.rejects(ensureWireGuard('bad/name', { exec: f.exec }), WireGuardError);
    assert.deepEqual(f.argvs, []);
  });
});
