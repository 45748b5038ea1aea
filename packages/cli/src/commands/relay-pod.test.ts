import assert from 'node:assert/strict';
import { kubeTarget } from './relay-pod.js';

describe('weft observe --context', () => {
  it('takes its own flags and leaves the rest for the relay pod\'s weft observe', () => {
    assert.deepEqual(kubeTarget(['--from-pod', 'demo/a', '--context', 'prod', '--release=w', '-o', 'json']), { context: 'prod', release: 'w', namespace: 'kube-system', rest: ['--from-pod', 'demo/a', '-o', 'json'] });
    assert.deepEqual(kubeTarget(['nodes', '--context=c1', '--weft-namespace', 'weft', '--kubeconfig', '/k']), { context: 'c1', kubeconfig: '/k', release: 'weft', namespace: 'weft', rest: ['nodes'] });
    assert.equal(kubeTarget(['--last', '5']), undefined);
  });

  it('names what is wrong', () => {
    assert.throws(() => kubeTarget(['--release', 'w']), /--release goes with --context/);
    assert.throws(() => kubeTarget(['--context']), /--context needs a value/);
    assert.throws(() => kubeTarget(['--context', 'c', '--server', 'unix:///x']), /does not go with --server or --cluster/);
  });
});
