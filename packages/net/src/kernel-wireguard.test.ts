import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { NetCommandError, WireGuardError, WireGuardKeyError } from './errors.js';
import { KernelWireGuard, parseWgDump, wgSetPeerArgs } from './kernel-wireguard.js';
import { generatePrivateKey, publicKeyOf } from './wireguard.js';

const key = (): string => publicKeyOf(generatePrivateKey()).toString('base64');

describe('kernel WireGuard: wg show dump', () => {
  const priv = generatePrivateKey().toString('base64');
  const [pa, pb] = [key(), key()];
  const dump = [
    `${priv}\t${key()}\t51871\toff`,
    `${pa}\t(none)\t10.99.1.12:51871\t10.101.2.0/24\t1764638912\t92412\t180364\t25`,
    `${pb}\t(none)\t(none)\t(none)\t0\t0\t0\toff`,
    '',
  ].join('\n');

  it('reads each peer: endpoint, allowed IPs, handshake in whole seconds, bytes', () => {
    assert.deepEqual(parseWgDump(dump), [
      { publicKey: pa, endpoint: '10.99.1.12:51871', allowedIps: ['10.101.2.0/24'], lastHandshakeSec: 1764638912, rxBytes: 92412, txBytes: 180364 },
      { publicKey: pb, allowedIps: [], lastHandshakeSec: 0, rxBytes: 0, txBytes: 0 },
    ]);
    const multi = parseWgDump(`${priv}\t${key()}\t51871\toff\n${pa}\t(none)\t10.99.1.12:51871\t10.101.2.0/24,10.101.3.0/24\t0\t0\t0\t25\n`);
    assert.deepEqual(multi[0]!.allowedIps, ['10.101.2.0/24', '10.101.3.0/24']);
    assert.deepEqual(parseWgDump(`${priv}\t${key()}\t51871\toff\n`), [], 'a device without peers');
  });

  it('refuses output it does not understand, never quoting the private key line', () => {
    const check = (text: string, re: RegExp): void =>
      assert.throws(() => parseWgDump(text, 'weftwg1n1'), (e: unknown) => e instanceof WireGuardError && re.test((e as Error).message) && !(e as Error).message.includes(priv));
    check(`${priv}\t${key()}\t51871\n`, /weftwg1n1: the first line of wg show dump has 3 fields, expected the interface's 4/);
    check(`${priv}\t${key()}\t51871\toff\n${pa}\t(none)\t10.99.1.12:51871\n`, /line 2 of wg show dump has 3 fields, expected 8/);
    check(`${priv}\t${key()}\t51871\toff\n${pa}\t(none)\t(none)\t(none)\tsoon\t0\t0\toff\n`, /non-numeric handshake or transfer/);
    assert.throws(() => parseWgDump(`${priv}\t${key()}\t51871\toff\nnot-a-key\t(none)\t(none)\t(none)\t0\t0\t0\toff\n`), WireGuardKeyError);
  });
});

describe('kernel WireGuard: wg set', () => {
  const [pa, pb, pc] = [key(), key(), key()];

  it('removes, then adds or updates peers with a 25 s keepalive, in one command', () => {
    assert.deepEqual(wgSetPeerArgs([{ publicKey: pa, endpoint: '10.99.1.12:51871', allowedIps: ['10.101.2.0/24', '10.101.9.0/24'] }], [pc]), [
      'peer', pc, 'remove',
      'peer', pa, 'endpoint', '10.99.1.12:51871', 'allowed-ips', '10.101.2.0/24,10.101.9.0/24', 'persistent-keepalive', '25',
    ]);
    assert.deepEqual(wgSetPeerArgs([], []), []);
  });

  it('handshakeNow: turns each peer\'s keepalive off in an entry of its own before the full one', () => {
    const args = wgSetPeerArgs([{ publicKey: pa, endpoint: '10.99.1.12:51871', allowedIps: ['10.101.2.0/24'] }, { publicKey: pb, endpoint: '10.99.1.13:51871', allowedIps: ['10.101.3.0/24'] }], [], { handshakeNow: true });
    assert.deepEqual(args.slice(0, 6), ['peer', pa, 'persistent-keepalive', 'off', 'peer', pb]);
    assert.deepEqual(args.slice(-2), ['persistent-keepalive', '25']);
    assert.equal(args.filter((a) => a === 'off').length, 2);
  });

  it('refuses keys and values that are not what they claim', () => {
    assert.throws(() => wgSetPeerArgs([{ publicKey: 'nope', endpoint: '10.99.1.12:51871', allowedIps: [] }], []), WireGuardKeyError);
    assert.throws(() => wgSetPeerArgs([], ['nope']), WireGuardKeyError);
    assert.throws(() => wgSetPeerArgs([{ publicKey: pa, endpoint: 'remove', allowedIps: [] }], []), /Invalid peer endpoint "remove"/);
    assert.throws(() => wgSetPeerArgs([{ publicKey: pa, endpoint: '10.99.1.12:51871', allowedIps: ['10.0.0.0/8,0.0.0.0/0'] }], []), /Invalid allowed IP/);
  });
});

describe('kernel WireGuard device', () => {
  const privateKey = generatePrivateKey();

  /** A fake `wg`: records argv and what the key file held while it ran. */
  function fakeWg(fail?: string) {
    const calls: Array<{ argv: string[]; file?: string; content?: string; mode?: number; dirMode?: number }> = [];
    const exec = async (argv: string[]): Promise<string> => {
      const call: (typeof calls)[number] = { argv };
      const i = argv.indexOf('private-key');
      if (i >= 0) {
        const file = argv[i + 1]!;
        Object.assign(call, { file, content: readFileSync(file, 'utf8'), mode: statSync(file).mode & 0o777, dirMode: statSync(dirname(file)).mode & 0o777 });
      }
      calls.push(call);
      if (fail) throw new NetCommandError(argv, 1, fail);
      return '';
    };
    return { calls, exec };
  }

  it('hands the private key over in a 0600 file in a 0700 directory, removed right after', async () => {
    const wg = fakeWg();
    const dev = new KernelWireGuard('weftwg1n1', { exec: wg.exec });
    assert.equal(dev.implementation, 'kernel');
    await dev.configure(privateKey, 51871);
    await dev.setPrivateKey(privateKey);
    assert.equal(wg.calls.length, 2);
    const [configure, rekey] = wg.calls;
    assert.deepEqual(configure!.argv, ['wg', 'set', 'weftwg1n1', 'private-key', configure!.file, 'listen-port', '51871']);
    assert.deepEqual(rekey!.argv, ['wg', 'set', 'weftwg1n1', 'private-key', rekey!.file]);
    for (const c of wg.calls) {
      assert.equal(c.content, privateKey.toString('base64') + '\n');
      assert.equal(c.mode, 0o600);
      assert.equal(c.dirMode, 0o700);
      assert.equal(existsSync(dirname(c.file!)), false, 'the key file and its directory are gone');
      assert.ok(!c.argv.some((a) => a.includes(privateKey.toString('base64'))), 'the key is never on the command line');
    }
  });

  it('removes the key file when wg fails too, and says what wg answered', async () => {
    const wg = fakeWg('Unable to modify interface: No such device\n');
    const dev = new KernelWireGuard('weftwg1n1', { exec: wg.exec });
    await assert.rejects(dev.setPrivateKey(privateKey), (e: unknown) => e instanceof WireGuardError && /Cannot set the private key of WireGuard device weftwg1n1 \(kernel\): Unable to modify interface: No such device/.test((e as Error).message));
    assert.equal(existsSync(dirname(wg.calls[0]!.file!)), false);
  });

  it('reads peers with wg show dump and sends nothing when there is nothing to change', async () => {
    const calls: string[][] = [];
    const dev = new KernelWireGuard('weftwg1n1b', {
      exec: async (argv) => {
        calls.push(argv);
        return `${privateKey.toString('base64')}\t${key()}\t51872\toff\n`;
      },
    });
    assert.deepEqual(await dev.peers(), []);
    await dev.setPeers([], []);
    assert.deepEqual(calls, [['wg', 'show', 'weftwg1n1b', 'dump']]);
  });

  it('refuses device names the kernel cannot have', () => {
    assert.throws(() => new KernelWireGuard('a-name-far-too-long'), WireGuardError);
    assert.throws(() => new KernelWireGuard('bad/name'), WireGuardError);
  });
});
