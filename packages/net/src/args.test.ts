import assert from 'node:assert/strict';
import childProcess from 'node:child_process';
import { ipArgumentProblem, netnsNameProblem } from './args.js';
import { NetArgumentError } from './errors.js';
import { Ip, netns } from './ip.js';

describe('ip arguments', () => {
  it('accepts what Weft passes to ip and refuses what ip -batch would read as more than one argument', () => {
    for (const ok of ['eth0', 'lxc0123456789a', '10.0.0.0/8', 'rfc4106(gcm(aes))', '0x00ff', '-j', 'default', '02:00:00:00:00:05', 'net.ipv4.ip_forward']) {
      assert.equal(ipArgumentProblem(ok), undefined, ok);
    }
    const refused: Array<[string, RegExp]> = [
      ['eth0\nlink del eth1', /whitespace \(newline\)/],
      ['eth0 up', /whitespace \(space\)/],
      ['eth0\tup', /whitespace \(tab\)/],
      ['eth0\rx', /whitespace \(carriage return\)/],
      ['eth0\0x', /NUL/],
      ['eth0\x1bx', /control character \(U\+001B\)/],
      ['eth0\x7f', /control character \(U\+007F\)/],
      ['eth0\u00a0', /whitespace/],
      ['eth\u00e90', /non-ASCII character \(U\+00E9\)/],
      ['', /is empty/],
      ['eth0#', /"#", which ip -batch interprets/],
      ['"eth0', /"\\"", which ip -batch interprets/],
      ["'eth0", /"'", which ip -batch interprets/],
      ['eth0\\', /"\\\\", which ip -batch interprets/],
    ];
    for (const [arg, why] of refused) assert.match(ipArgumentProblem(arg) ?? 'accepted', why, JSON.stringify(arg));
  });

  it('accepts namespace names the lab and runtimes use, and refuses paths, options and odd characters', () => {
    for (const ok of ['weft-c1-0123456789', 'cni-6b3f0e2a-1b2c-4d5e-8f90-123456789abc', 'p1', 'a.b_c']) assert.equal(netnsNameProblem(ok), undefined, ok);
    for (const bad of ['', '.', '..', '-n', '../etc', 'a/b', 'a b', 'a\nb', 'x'.repeat(256), 'é']) assert.notEqual(netnsNameProblem(bad), undefined, JSON.stringify(bad));
  });

  describe('refused before any process starts', () => {
    const realSpawn = childProcess.spawn;
    let spawned: string[][] = [];
    beforeEach(() => {
      spawned = [];
      // Every refusal must happen before this is reached: a process here would be `ip` running as root.
      (childProcess as { spawn: unknown }).spawn = (cmd: string, args: string[]) => {
        spawned.push([cmd, ...args]);
        throw new Error(`spawned ${cmd} ${args.join(' ')}`);
      };
    });
    afterEach(() => {
      (childProcess as { spawn: unknown }).spawn = realSpawn;
    });

    const refuses = async (what: string, p: Promise<unknown>, message: RegExp): Promise<void> => {
      await assert.rejects(p, (err: unknown) => {
        assert.ok(err instanceof NetArgumentError, `${what}: ${String(err)}`);
        assert.equal(err.code, 'WEFT_ERR_NET_ARGUMENT');
        assert.match(err.message, message, what);
        return true;
      });
      assert.deepEqual(spawned, [], `${what} started a process`);
    };

    it('in ip -batch lines (the CNI_IFNAME newline attack)', async () => {
      const pod = new Ip('p1');
      await refuses('ifname with a newline', pod.batch([['link', 'set', 'dev', 'tmp0', 'name', 'eth0\nlink show'], ['link', 'set', 'dev', 'lo', 'up']]), /ip -batch line 1: argument 6 "eth0\\nlink show" contains whitespace \(newline\)/);
      await refuses('a later line', pod.batch([['link', 'set', 'dev', 'lo', 'up'], ['addr', 'replace', '10.0.0.5/32', 'dev', 'eth0 #']]), /ip -batch line 2: argument 5/);
      await refuses('a control character', new Ip().batch([['link', 'show', 'dev', 'lo\x00']]), /NUL/);
      await refuses('a namespace name with a newline', new Ip('p1\nlink show').batch([['link', 'show']]), /ip -n: network namespace name "p1\\nlink show" is not valid/);
    });

    it('in single ip commands and netns operations', async () => {
      await refuses('ip run', new Ip().run(['link', 'show', 'dev', 'lo show']), /Refusing to run ip: argument 4 "lo show" contains whitespace/);
      await refuses('ip -n', new Ip('../../etc').run(['link', 'show']), /network namespace name/);
      await refuses('deleteLink', new Ip().deleteLink('eth0\tx'), /whitespace \(tab\)/);
      await refuses('link', new Ip().link(''), /is empty/);
      await refuses('netns add', netns.add('p1 p2'), /ip netns add: network namespace name "p1 p2"/);
      await refuses('netns delete', netns.delete('-all'), /ip netns del: network namespace name "-all"/);
      await refuses('netns exec', netns.exec('p1\n', ['true']), /ip netns exec/);
      await refuses('sysctl value', netns.sysctl('p1', 'net.ipv4.ip_forward', '1\n'), /sysctl: argument 2/);
    });
  });
});
