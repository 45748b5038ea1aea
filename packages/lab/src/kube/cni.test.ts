import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CniConfigError, CniPluginError, loadNetworkConfig, parseNetworkConfig, podIps } from './cni.js';

describe('lab kubelet: the node\'s CNI configuration', () => {
  it('reads a conflist, and a single-plugin .conf as a list of one', () => {
    const list = parseNetworkConfig('/n/05-weft.conflist', JSON.stringify({ cniVersion: '1.0.0', name: 'weft', plugins: [{ type: 'weft-cni', agentSocket: '/var/run/weft/agent.sock' }, { type: 'portmap' }] }));
    assert.deepEqual(list.plugins.map((p) => p.type), ['weft-cni', 'portmap']);
    const one = parseNetworkConfig('/n/10-bridge.conf', JSON.stringify({ cniVersion: '0.4.0', name: 'br', type: 'bridge' }));
    assert.deepEqual({ name: one.name, cniVersion: one.cniVersion, types: one.plugins.map((p) => p.type) }, { name: 'br', cniVersion: '0.4.0', types: ['bridge'] });
  });

  it('refuses a plugin type that is a path, and says which file and plugin', () => {
    assert.throws(() => parseNetworkConfig('/n/a.conflist', JSON.stringify({ cniVersion: '1.0.0', name: 'x', plugins: [{ type: 'ok' }, { type: '../../usr/bin/evil' }] })), (e: Error) => e instanceof CniConfigError && /\/n\/a\.conflist: plugin 1 has type "\.\.\/\.\.\/usr\/bin\/evil"/.test(e.message));
    assert.throws(() => parseNetworkConfig('/n/a.conflist', '{"cniVersion":"1.0.0","name":"x","plugins":[]}'), /"plugins" must be a non-empty list/);
    assert.throws(() => parseNetworkConfig('/n/a.conf', '{'), /\/n\/a\.conf: not JSON/);
  });

  it('takes the first valid file in lexical order, saying why earlier ones were passed over', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-cniconf-'));
    try {
      assert.deepEqual(loadNetworkConfig(join(dir, 'missing')), { skipped: [] }, 'no directory yet: not ready');
      writeFileSync(join(dir, '00-broken.conflist'), '{');
      writeFileSync(join(dir, '05-weft.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'weft', plugins: [{ type: 'weft-cni' }] }));
      writeFileSync(join(dir, '10-other.conf'), JSON.stringify({ cniVersion: '1.0.0', name: 'other', type: 'bridge' }));
      writeFileSync(join(dir, 'README'), 'not a configuration');
      const r = loadNetworkConfig(dir);
      assert.equal(r.config?.name, 'weft');
      assert.equal(r.skipped.length, 1);
      assert.match(r.skipped[0]!, /00-broken\.conflist: not JSON/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes the pod\'s addresses from a result, and refuses one without a valid address', () => {
    assert.deepEqual(podIps({ ips: [{ address: '10.101.1.5/32' }, { address: 'fd00::5/128' }] }, 'ADD'), ['10.101.1.5', 'fd00::5']);
    assert.throws(() => podIps({ ips: [] }, 'CNI ADD of pod a/b'), (e: Error) => e instanceof CniPluginError && /CNI ADD of pod a\/b: the result gives the pod no IP address/.test(e.message));
    assert.throws(() => podIps({ ips: [{ address: '10.101.1.5; rm -rf /' }] }, 'ADD'), /not an IP address/);
  });
});
