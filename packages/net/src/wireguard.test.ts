import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WireGuardError, WireGuardKeyError } from './errors.js';
import { decodeKey, loadOrCreateNodeKey, publicKeyOf, WireGuardUapi } from './wireguard.js';

describe('WireGuard keys', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'weft-wgkey-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('creates a key file with mode 0600 and keeps the same key on the next load', () => {
    const path = join(dir, 'sub', 'wireguard.key');
    const first = loadOrCreateNodeKey(path);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(first.privateKey.length, 32);
    assert.deepEqual(loadOrCreateNodeKey(path).publicKey, first.publicKey);
  });

  it('derives the public key exactly as wg does', () => {
    const key = loadOrCreateNodeKey(join(dir, 'k'));
    const wg = execFileSync('wg', ['pubkey'], { input: key.privateKey.toString('base64') + '\n', encoding: 'utf8' }).trim();
    assert.equal(key.publicKeyText, wg);
    assert.deepEqual(publicKeyOf(key.privateKey), key.publicKey);
  });

  it('refuses malformed, short and exposed key files, saying which and why', () => {
    const path = join(dir, 'k');
    writeFileSync(path, 'not a key!\n', { mode: 0o600 });
    assert.throws(() => loadOrCreateNodeKey(path), (e: unknown) => e instanceof WireGuardKeyError && /k is not base64/.test((e as Error).message));
    writeFileSync(path, Buffer.alloc(16, 7).toString('base64') + '\n');
    assert.throws(() => loadOrCreateNodeKey(path), /decodes to 16 bytes, not 32/);
    writeFileSync(path, Buffer.alloc(32, 7).toString('base64') + '\n');
    chmodSync(path, 0o644);
    assert.throws(() => loadOrCreateNodeKey(path), /mode 644: it must not be readable by group or others/);
    assert.equal(readFileSync(path, 'utf8'), Buffer.alloc(32, 7).toString('base64') + '\n', 'a bad file is never replaced');
  });

  it('checks published keys', () => {
    assert.equal(decodeKey(Buffer.alloc(32, 1).toString('base64'), 'x').length, 32);
    assert.throws(() => decodeKey(Buffer.alloc(33, 1).toString('base64'), 'peer c2-node1 public key'), /peer c2-node1 public key decodes to 33 bytes/);
    assert.throws(() => decodeKey('', 'k'), WireGuardKeyError);
  });

  it('refuses a peer value that would add a line to the UAPI request, before connecting', async () => {
    const pk = Buffer.alloc(32, 9).toString('base64');
    const dev = new WireGuardUapi('wgt-inject');
    await assert.rejects(dev.setPeers([{ publicKey: pk, endpoint: '10.0.0.1:51820\nremove=true', allowedIps: ['10.101.2.0/24'] }], []), /refusing peer endpoint "10\.0\.0\.1:51820\\nremove=true"/);
    await assert.rejects(dev.setPeers([{ publicKey: pk, endpoint: '10.0.0.1:51820', allowedIps: ['10.101.2.0/24\nallowed_ip=0.0.0.0/0'] }], []), /refusing peer allowed IP "10\.101\.2\.0\/24\\nallowed_ip=0\.0\.0\.0\/0"/);
  });

  it('refuses device names wireguard-go cannot have', () => {
    assert.throws(() => new WireGuardUapi('a-name-far-too-long'), WireGuardError);
    assert.throws(() => new WireGuardUapi('bad/name'), WireGuardError);
  });
});
