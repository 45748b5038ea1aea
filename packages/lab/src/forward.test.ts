import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@weft/common';
import { LabError } from './errors.js';
import { forward, parseForwardAddress } from './forward.js';

describe('lab forwarder', () => {
  it('carries bytes both ways, loopback TCP to a unix socket to TCP, and closes both sides together', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-forward-'));
    const echo = createServer((s) => s.pipe(s)).listen(0, '127.0.0.1');
    await once(echo, 'listening');
    const sock = join(dir, 'api.sock');
    const inner = await forward({ unix: sock }, { host: '127.0.0.1', port: (echo.address() as AddressInfo).port }, silentLogger());
    const outer = await forward({ host: '127.0.0.1', port: 0 }, { unix: sock }, silentLogger());
    try {
      const client = connect((outer.address() as AddressInfo).port, '127.0.0.1');
      client.end('hello through two forwarders');
      let got = '';
      for await (const chunk of client) got += String(chunk);
      assert.equal(got, 'hello through two forwarders');
    } finally {
      for (const s of [outer, inner, echo]) await new Promise((r) => s.close(r));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes unix:/path and tcp:IP:port, and names what is wrong otherwise', () => {
    assert.deepEqual(parseForwardAddress('unix:/run/x.sock', '--to'), { unix: '/run/x.sock' });
    assert.deepEqual(parseForwardAddress('tcp:10.99.1.2:6443', '--to'), { host: '10.99.1.2', port: 6443 });
    for (const bad of ['tcp:localhost:80', 'tcp:10.0.0.1:0', 'tcp:10.0.0.1:70000', 'unix:relative', '10.0.0.1:80']) {
      assert.throws(() => parseForwardAddress(bad, '--listen'), (e: Error) => e instanceof LabError && e.message.includes(`--listen ${JSON.stringify(bad)}`));
    }
  });
});
