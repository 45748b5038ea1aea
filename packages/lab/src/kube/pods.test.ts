import assert from 'node:assert/strict';
import { backoffMs, expand, podNetnsName, podPhase, restarts } from './pods.js';

describe('lab kubelet: pod lifecycle rules', () => {
  it('restarts a container by the pod\'s restartPolicy', () => {
    assert.deepEqual([0, 1].map((code) => [restarts(undefined, code), restarts('Always', code), restarts('OnFailure', code), restarts('Never', code)]), [
      [true, true, false, false],
      [true, true, true, false],
    ]);
  });

  it('backs off 10 s, doubling, at most 5 minutes, as kubelet does', () => {
    assert.deepEqual([1, 2, 3, 5, 6, 20].map(backoffMs), [10_000, 20_000, 40_000, 160_000, 300_000, 300_000]);
  });

  it('gives the pod\'s phase from its containers', () => {
    const running = { running: true, willRestart: false };
    const ok = { running: false, exit: { code: 0 }, willRestart: false };
    const failed = { running: false, exit: { code: 1 }, willRestart: false };
    assert.equal(podPhase([running, ok]), 'Running');
    assert.equal(podPhase([ok, ok]), 'Succeeded');
    assert.equal(podPhase([ok, failed]), 'Failed');
    assert.equal(podPhase([{ ...failed, willRestart: true }]), 'Running', 'a container that starts again keeps the pod running');
    assert.equal(podPhase([{ running: false, willRestart: false }]), 'Running', 'not started yet');
  });

  it('names a pod\'s network namespace after its node and uid, so a pod recreated under its name gets a new one', () => {
    assert.equal(podNetnsName('weft-c1-node1', '7d696f3a-801c-4cc6-914a-fa28de2e5f06'), 'weft-c1-node1-p7d696f3a801c');
  });

  it('expands $(VAR) from the container\'s environment and leaves unknown ones', () => {
    assert.equal(expand('--node=$(NODE) $(MISSING)', { NODE: 'n1' }), '--node=n1 $(MISSING)');
  });
});
