import assert from 'node:assert/strict';
import { NamedPortIndex } from './named-ports.js';

describe('NamedPortIndex', () => {
  it('gives each identity the numbers its pods give a name, until the last such pod goes, and says when that changes', () => {
    const idx = new NamedPortIndex();
    let changes = 0;
    idx.onChange = () => changes++;
    idx.set('c/10.0.0.1', 100, [{ name: 'http', protocol: 'TCP', port: 8080 }]);
    idx.set('c/10.0.0.2', 100, [{ name: 'http', protocol: 'TCP', port: 8080 }]);
    idx.set('r/west/10.1.0.1', 200, [{ name: 'http', protocol: 'TCP', port: 9090 }, { name: 'dns', protocol: 'UDP', port: 53 }]);
    assert.deepEqual(idx.lookup(100, 'http'), [{ name: 'http', protocol: 'TCP', port: 8080 }]);
    assert.deepEqual(idx.lookup(0, 'http').map((p) => p.port).sort(), [8080, 9090], 'any peer: every pod\'s number');
    assert.deepEqual(idx.lookup(200, 'dns'), [{ name: 'dns', protocol: 'UDP', port: 53 }]);
    assert.deepEqual(idx.lookup(300, 'http'), []);
    idx.set('c/10.0.0.1', 100, [{ name: 'http', protocol: 'TCP', port: 8080 }]); // the same again
    assert.equal(changes, 3);
    idx.set('c/10.0.0.1', undefined, undefined);
    assert.deepEqual(idx.lookup(100, 'http').map((p) => p.port), [8080], 'another pod still gives it');
    idx.set('c/10.0.0.2', 101, [{ name: 'http', protocol: 'TCP', port: 8080 }]); // relabelled: another identity
    assert.deepEqual(idx.lookup(100, 'http'), []);
    assert.deepEqual(idx.lookup(101, 'http').map((p) => p.port), [8080]);
    assert.equal(changes, 5);
  });
});
