import assert from 'node:assert/strict';
import { compileFlowFilters, makeFlow } from '@weft/observer';
import { parseObserveFlags } from './observe-request.js';

describe('weft observe flags', () => {
  it('makes an either-side flag a pair of filters, and parses the other options with the command table', () => {
    const { request, values } = parseObserveFlags(['--pod', 'demo/a', '--verdict', 'dropped', '-o', 'json', '--follow']);
    assert.deepEqual(request.allow, [
      { sourcePod: ['demo/a'], verdict: ['DROPPED'] },
      { destinationPod: ['demo/a'], verdict: ['DROPPED'] },
    ]);
    assert.deepEqual([values.output, values.follow, values.all], ['json', true, false]);
  });

  it('sets one side for directional flags and collects repeated ones', () => {
    const { request } = parseObserveFlags(['--from-label', 'app=web', '--to-port=80', '--to-port', '443', '--protocol', 'TCP', '--encrypted']);
    assert.deepEqual(request.allow, [{ sourceLabel: ['app=web'], destinationPort: [80, 443], protocol: ['TCP'], encrypted: [true] }]);
  });

  it('puts the filter after --not into the deny list', () => {
    const { request } = parseObserveFlags(['--namespace', 'demo', '--not', '--to-port', '53']);
    assert.deepEqual(request.deny, [{ destinationPort: [53] }]);
    const pass = compileFlowFilters(request.allow, request.deny);
    assert.equal(pass(makeFlow({ source: { namespace: 'demo' }, destination: { port: 53 } })), false);
    assert.equal(pass(makeFlow({ source: { namespace: 'demo' }, destination: { port: 80 } })), true);
    assert.equal(pass(makeFlow({ destination: { namespace: 'demo', port: 80 } })), true);
    assert.equal(pass(makeFlow({ destination: { namespace: 'other', port: 80 } })), false);
  });

  it('reads --since and --until as durations ago or RFC 3339 times', () => {
    const { request, values } = parseObserveFlags(['--since', '5m', '--until=2026-12-04T10:00:00Z', '--last', '5'], 1_000_000_000_000);
    assert.deepEqual(request.since, { seconds: 999_999_700, nanos: 0 });
    assert.deepEqual(request.until, { seconds: Date.parse('2026-12-04T10:00:00Z') / 1000, nanos: 0 });
    assert.equal(values.last, '5');
  });

  it('names what is wrong', () => {
    assert.throws(() => parseObserveFlags(['--pod']), /--pod needs a value/);
    assert.throws(() => parseObserveFlags(['--not']), /--not must be followed by a filter flag/);
    assert.throws(() => parseObserveFlags(['--not', '--follow']), /--not must come before a filter flag/);
    assert.throws(() => parseObserveFlags(['--to-port', 'http']), /--to-port "http": expected a number/);
    assert.throws(() => parseObserveFlags(['--tcp-flags', 'SYN,BOGUS']), /unknown TCP flag "BOGUS"/);
    assert.throws(() => parseObserveFlags(['--since', 'yesterday']), /Invalid --since "yesterday"/);
    assert.throws(() => parseObserveFlags(['--form-pod', 'a']), /Unknown option --form-pod for weft observe; did you mean --from-pod\? \(see weft observe --help\)/);
    assert.throws(() => parseObserveFlags(['--pod', '--follow']), /Option --pod would take "--follow" as its value/);
  });
});
