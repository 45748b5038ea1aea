import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiServer, BODY_TOO_LARGE, MAX_BODY_BYTES } from './api.js';

/** One raw request; resolves with what the server answered even if it then closed the connection mid-upload. */
function post(socketPath: string, body: Buffer, chunked: boolean): Promise<{ status: number; json: { error?: { code: string; message: string } } }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'content-type': 'application/json', ...(chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(body.length) }) };
    const req = request({ socketPath, method: 'POST', path: '/v1/cni', headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as { error?: { code: string; message: string } } }));
    });
    // The server may close while we still send (EPIPE): only an error without an answer is a failure.
    req.on('error', (err) => setTimeout(() => reject(err), 1000).unref());
    if (chunked) for (let i = 0; i < body.length; i += 16 * 1024) req.write(body.subarray(i, i + 16 * 1024));
    else req.write(body);
    req.end();
  });
}

describe('agent API server', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'weft-api-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('creates its socket 0600, with no moment where it is wider, whatever the process umask', async () => {
    const api = new ApiServer(join(dir, 'agent.sock'));
    const umask = process.umask(0); // the worst case: every file the process creates is 0777 unless said otherwise
    let started: Promise<void>;
    let atBind: number;
    try {
      started = api.start();
      // start() binds before its first await: this is the socket as it is the moment it exists.
      atBind = statSync(api.socketPath).mode & 0o777;
    } finally {
      process.umask(umask);
    }
    await started;
    try {
      assert.equal(atBind.toString(8), '600', 'mode right after bind');
      assert.equal((statSync(api.socketPath).mode & 0o777).toString(8), '600', 'mode once listening');
      assert.equal(process.umask(), umask, 'the process umask is restored');
    } finally {
      await api.stop();
    }
  });

  it('refuses a request body over its limit with 413 and a clear error, without calling the route', async () => {
    const api = new ApiServer(join(dir, 'agent.sock'));
    let calls = 0;
    api.route('POST', '/v1/cni', async ({ body }) => {
      calls++;
      return { got: (body as { pad: string }).pad.length };
    });
    await api.start();
    try {
      const pad = (n: number): Buffer => Buffer.from(JSON.stringify({ pad: 'x'.repeat(n) }));
      for (const chunked of [false, true]) {
        const r = await post(api.socketPath, pad(4 * 1024 * 1024), chunked);
        assert.equal(r.status, 413, `chunked=${chunked}`);
        assert.equal(r.json.error?.code, BODY_TOO_LARGE);
        assert.match(r.json.error!.message, new RegExp(`^Request body of POST /v1/cni is larger than ${MAX_BODY_BYTES} bytes$`));
      }
      assert.equal(calls, 0, 'the route never saw an oversized body');
      const ok = await post(api.socketPath, pad(MAX_BODY_BYTES - 100), true);
      assert.equal(ok.status, 200, 'a body under the limit is served');
      assert.equal(calls, 1);
    } finally {
      await api.stop();
    }
  });
});
