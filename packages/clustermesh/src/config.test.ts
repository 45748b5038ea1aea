import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkRemoteRanges, loadMeshConfig, readEtcdTls, resolveRemotes } from './config.js';
import { MeshConfigError } from './errors.js';
import type { MeshConfig, RemoteConfig } from './types.js';

const pem = { ca: 'CA PEM', cert: 'CERT PEM', key: 'KEY PEM' };
const remote = (name: string, id: number): RemoteConfig => ({ name, id, address: `${name}.example:32379`, ...pem });

describe('clustermesh config: remotes from remotesDir', () => {
  let dir: string;
  let remotesDir: string;
  const config = (remotes: RemoteConfig[], withDir = true): MeshConfig => ({ cluster: 'east', clusterId: 1, etcd: ['127.0.0.1:2379'], listen: '0.0.0.0:32379', ...pem, remotes, ...(withDir ? { remotesDir } : {}) });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'weft-remotes-'));
    remotesDir = join(dir, 'remotes');
    mkdirSync(remotesDir);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** As kubelet lays out a Secret volume: the files live in a timestamped directory behind `..data`. */
  function secretVolume(files: Record<string, unknown>): void {
    const data = join(remotesDir, '..2024_01_01_00_00_00.1');
    mkdirSync(data);
    symlinkSync('..2024_01_01_00_00_00.1', join(remotesDir, '..data'));
    for (const [f, v] of Object.entries(files)) {
      writeFileSync(join(data, f), typeof v === 'string' ? v : JSON.stringify(v));
      symlinkSync(join('..data', f), join(remotesDir, f));
    }
  }

  it('adds the remotes of a mounted Secret to the configured ones', () => {
    secretVolume({ 'north.json': remote('north', 3), 'south.json': remote('south', 4) });
    const { remotes, problems } = resolveRemotes(config([remote('west', 2)]));
    assert.deepEqual(problems, []);
    assert.deepEqual(remotes, [remote('west', 2), remote('north', 3), remote('south', 4)]);
  });

  it('adds nothing from a missing or empty directory, or without remotesDir', () => {
    assert.deepEqual(resolveRemotes(config([remote('west', 2)])), { remotes: [remote('west', 2)], problems: [] });
    rmSync(remotesDir, { recursive: true });
    assert.deepEqual(resolveRemotes(config([remote('west', 2)])), { remotes: [remote('west', 2)], problems: [] });
    assert.deepEqual(resolveRemotes(config([remote('west', 2)], false)), { remotes: [remote('west', 2)], problems: [] });
  });

  it('refuses a file that clashes with a configured remote, keeping the configured one', () => {
    secretVolume({ 'west.json': { ...remote('west', 5), address: 'elsewhere:1' }, 'north.json': remote('north', 2) });
    const { remotes, problems } = resolveRemotes(config([remote('west', 2)]));
    assert.deepEqual(remotes, [remote('west', 2)], 'the configured remote stays, untouched');
    assert.deepEqual(problems, [
      { remote: join(remotesDir, 'north.json'), reason: 'cluster id 2 is already configured in remotes (remote west, chart value clustermesh.remotes); this file is ignored: remove one of the two' },
      { remote: join(remotesDir, 'west.json'), reason: 'name west is already configured in remotes (remote west, chart value clustermesh.remotes); this file is ignored: remove one of the two' },
    ]);
  });

  it('validates file remotes as configured ones, and refuses malformed or misnamed files', () => {
    secretVolume({ 'self.json': remote('self', 1), 'zero.json': remote('zero', 0), 'broken.json': '{"name": ', 'noca.json': { ...remote('noca', 7), ca: '' }, 'other.json': remote('north', 8) });
    const problems = resolveRemotes(config([])).problems.map((p) => `${p.remote.replace(`${remotesDir}/`, '')}: ${p.reason}`);
    assert.deepEqual(problems, [
      `broken.json: ${problemOf('{"name": ')}`,
      'noca.json: ca must be a non-empty string',
      'other.json: holds remote north: the file must be named north.json',
      "self: cluster id 1 is this cluster's own id",
      'zero: cluster id 0 is out of range 1-255',
    ]);
  });

  it('loads remotesDir from the config file and refuses a non-path', () => {
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify(config([])));
    assert.equal(loadMeshConfig(file).remotesDir, remotesDir);
    writeFileSync(file, JSON.stringify({ ...config([]), remotesDir: 7 }));
    assert.throws(() => loadMeshConfig(file), (err: unknown) => err instanceof MeshConfigError && err.code === 'WEFT_ERR_MESH_CONFIG' && err.message.endsWith('remotesDir must be a directory path'));
  });

  it('checks the ranges remotes may not claim, the caps and the stall limit', () => {
    const file = join(dir, 'config.json');
    const good = { ...config([]), podCidrs: ['10.101.0.0/16'], underlayCidrs: ['10.99.0.0/16'], serviceCidrs: ['10.96.0.0/16'], minPodCidrBits: 20, limits: { endpoints: 1000, bytes: 1 << 30 }, exportStallSeconds: 30 };
    writeFileSync(file, JSON.stringify(good));
    assert.deepEqual(loadMeshConfig(file), good);
    for (const [patch, message] of [
      [{ underlayCidrs: ['10.99.0.1/16'] }, 'underlayCidrs[0]: "10.99.0.1/16" has host bits set (network is 10.99.0.0/16)'],
      [{ podCidrs: '10.101.0.0/16' }, 'podCidrs must be a list of at most 256 IPv4 CIDRs'],
      [{ minPodCidrBits: 33 }, 'minPodCidrBits must be an integer 0-32, got 33'],
      [{ limits: { pods: 3 } }, 'limits.pods is not a cap (identities, nodes, endpoints, services, bytes)'],
      [{ limits: { nodes: -1 } }, 'limits.nodes must be an integer 0-10000000, got -1'],
      [{ exportStallSeconds: 0 }, 'exportStallSeconds must be a positive integer, got 0'],
    ] as const) {
      writeFileSync(file, JSON.stringify({ ...good, ...patch }));
      assert.throws(() => loadMeshConfig(file), (err: unknown) => err instanceof MeshConfigError && err.message.endsWith(message), message);
    }
    // Allow-lists: no overlap with our ranges or with another remote's; caps well-formed.
    assert.deepEqual(checkRemoteRanges(good, [
      { name: 'west', podCidrs: ['10.102.0.0/16'] },
      { name: 'south', podCidrs: ['10.102.128.0/17'] },
      { name: 'north', podCidrs: ['10.99.4.0/24', '10.104.0.0/16'] },
      { name: 'bad', podCidrs: ['10.105.0.1/16'] },
      { name: 'caps', limits: { endpoints: 1.5 } as never },
    ]), [
      { remote: 'south', reason: "podCidrs entry 10.102.128.0/17 overlaps remote west's podCidrs entry 10.102.0.0/16" },
      { remote: 'north', reason: 'podCidrs entry 10.99.4.0/24 overlaps our underlayCidrs entry 10.99.0.0/16' },
      { remote: 'bad', reason: 'podCidrs[0]: "10.105.0.1/16" has host bits set (network is 10.105.0.0/16)' },
      { remote: 'caps', reason: 'limits.endpoints must be an integer 0-10000000, got 1.5' },
    ]);
  });

  it('takes etcdTls as three file paths, read at start; plain etcd without it', () => {
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify(config([])));
    assert.equal(readEtcdTls(loadMeshConfig(file)), undefined, 'no etcdTls: plain connections, as in the lab');
    for (const [etcdTls, message] of [
      ['/ca.crt', 'etcdTls must be an object {ca, cert, key} of file paths'],
      [{ ca: '/a', cert: '/b' }, 'etcdTls.key must be a non-empty file path (PEM)'],
      [{ ca: '/a', cert: 7, key: '/c' }, 'etcdTls.cert must be a non-empty file path (PEM)'],
    ] as const) {
      writeFileSync(file, JSON.stringify({ ...config([]), etcdTls }));
      assert.throws(() => loadMeshConfig(file), (err: unknown) => err instanceof MeshConfigError && err.message.endsWith(message), message);
    }
    const files = { ca: join(dir, 'ca.crt'), cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key') };
    writeFileSync(file, JSON.stringify({ ...config([]), etcdTls: files }));
    const loaded = loadMeshConfig(file);
    assert.deepEqual(loaded.etcdTls, files);
    writeFileSync(files.ca, 'CA');
    writeFileSync(files.cert, 'CERT');
    assert.throws(() => readEtcdTls(loaded), (err: unknown) => err instanceof MeshConfigError && /etcdTls\.key: cannot read ".*tls\.key": ENOENT/.test(err.message));
    writeFileSync(files.key, 'KEY');
    assert.deepEqual(readEtcdTls(loaded), { ca: Buffer.from('CA'), cert: Buffer.from('CERT'), key: Buffer.from('KEY') });
  });
});

function problemOf(text: string): string {
  try {
    JSON.parse(text);
    return '';
  } catch (err) {
    return (err as Error).message;
  }
}

describe('clustermesh config: metrics', () => {
  it('serves metrics only when asked, on IPv4:port', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-mesh-metrics-'));
    try {
      const load = (metrics: unknown): MeshConfig => {
        const file = join(dir, 'config.json');
        writeFileSync(file, JSON.stringify({ cluster: 'east', clusterId: 1, etcd: ['127.0.0.1:2379'], listen: '0.0.0.0:32379', ...pem, remotes: [], ...(metrics === undefined ? {} : { metrics }) }));
        return loadMeshConfig(file);
      };
      assert.equal(load(undefined).metrics, undefined);
      assert.deepEqual(load({ listen: '0.0.0.0:9963' }).metrics, { listen: '0.0.0.0:9963' });
      assert.throws(() => load({ listen: 'apiserver:9963' }), (err: Error) => err instanceof MeshConfigError && /metrics\.listen "apiserver:9963" must be IPv4:port/.test(err.message));
      assert.throws(() => load({ listen: '0.0.0.0:9963', port: 1 }), (err: Error) => err instanceof MeshConfigError && /metrics must be an object \{listen\}/.test(err.message));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
