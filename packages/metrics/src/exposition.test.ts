import assert from 'node:assert/strict';
import { Counter, Histogram } from 'prom-client';
import { parseExposition, sampleValue } from './exposition.js';
import { ExpositionError } from './errors.js';
import { createRegistry } from './registry.js';

describe('parseExposition (text format 0.0.4, strict)', () => {
  it('reads families, HELP, TYPE, labels with escapes, special values and timestamps', () => {
    const f = parseExposition([
      '# A comment',
      '# HELP weft_x_total Things\\ncounted, with a \\\\.',
      '# TYPE weft_x_total counter',
      'weft_x_total{reason="a\\"b\\\\c\\nd",direction="INGRESS",} 3 1700000000000',
      'weft_x_total{reason="",direction="EGRESS"} 0',
      '# TYPE weft_g gauge',
      'weft_g Nan',
      'weft_g{l="1"} -Inf',
      'weft_g{l="2"} 1.5e-3',
      '# TYPE weft_h histogram',
      'weft_h_bucket{le="0.1"} 1',
      'weft_h_bucket{le="1"} 2',
      'weft_h_bucket{le="+Inf"} 2',
      'weft_h_sum 0.6',
      'weft_h_count 2',
      '',
    ].join('\n'));
    assert.deepEqual([...f.keys()], ['weft_x_total', 'weft_g', 'weft_h']);
    assert.equal(f.get('weft_x_total')!.help, 'Things\ncounted, with a \\.');
    assert.equal(f.get('weft_x_total')!.samples[0]!.labels.reason, 'a"b\\c\nd');
    assert.equal(f.get('weft_x_total')!.samples[0]!.timestampMs, 1700000000000);
    assert.ok(Number.isNaN(f.get('weft_g')!.samples[0]!.value));
    assert.equal(sampleValue(f, 'weft_g', { l: '1' }), -Infinity);
    assert.equal(sampleValue(f, 'weft_h_count'), 2);
    assert.equal(sampleValue(f, 'weft_x_total', { direction: 'EGRESS' }), 0);
    assert.throws(() => sampleValue(f, 'weft_x_total'), RangeError, 'two series match: the test must say which');
  });

  const bad: Array<[string, string[], RegExp]> = [
    ['a bad metric name', ['9x 1'], /must start with a metric name/],
    ['a bad label name', ['x{1a="b"} 1'], /label name is expected/],
    ['a reserved label name', ['x{__name__="b"} 1'], /reserved/],
    ['a duplicate label', ['x{a="1",a="2"} 1'], /appears twice/],
    ['an unquoted label value', ['x{a=1} 1'], /must be quoted/],
    ['an invalid escape', ['x{a="\\t"} 1'], /invalid escape/],
    ['an unclosed value', ['x{a="1} 1'], /not closed/],
    ['a value that is no float', ['x 0x10'], /not a float/],
    ['a value Go would not read', ['x Infinit'], /not a float/],
    ['a missing value', ['x{a="1"}'], /value is expected/],
    ['a second TYPE', ['# TYPE x gauge', '# TYPE x gauge'], /second TYPE/],
    ['a second HELP', ['# HELP x a', '# HELP x b'], /second HELP/],
    ['TYPE after samples', ['x 1', '# TYPE x gauge'], /after its samples/],
    ['an unknown type', ['# TYPE x meter'], /is not counter/],
    ['a split family', ['# TYPE x gauge', 'x{a="1"} 1', '# TYPE y gauge', 'y 1', 'x{a="2"} 1'], /not in one group/],
    ['a duplicate series', ['x{a="1",b="2"} 1', 'x{b="2",a="1"} 2'], /appears twice/],
    ['a negative counter', ['# TYPE x_total counter', 'x_total -1'], /counter x_total is -1/],
    ['a histogram without +Inf', ['# TYPE h histogram', 'h_bucket{le="1"} 1', 'h_sum 1', 'h_count 1'], /\+Inf bucket/],
    ['a histogram whose buckets shrink', ['# TYPE h histogram', 'h_bucket{le="1"} 2', 'h_bucket{le="2"} 1', 'h_bucket{le="+Inf"} 2', 'h_sum 1', 'h_count 2'], /fewer than the one before/],
    ['a +Inf bucket that is not the count', ['# TYPE h histogram', 'h_bucket{le="+Inf"} 2', 'h_sum 1', 'h_count 3'], /is not _count/],
  ];
  for (const [what, lines, message] of bad) {
    it(`rejects ${what}`, () => {
      assert.throws(() => parseExposition(lines.join('\n')), (err: Error) => err instanceof ExpositionError && err.code === 'WEFT_ERR_METRICS_EXPOSITION' && message.test(err.message));
    });
  }

  it('reads a name with a histogram suffix beside a gauge as a family of its own', () => {
    const f = parseExposition('# TYPE g gauge\ng 1\ng_sum 2\n');
    assert.deepEqual([f.get('g')!.type, f.get('g_sum')!.type], ['gauge', 'untyped']);
  });

  it('reads everything prom-client writes: the process metrics, counters, histograms, constant labels', async () => {
    const r = createRegistry({ cluster: 'c1', node: 'n1' });
    new Counter({ name: 'weft_test_total', help: 'A counter.', labelNames: ['reason'], registers: [r] }).inc({ reason: 'a "quoted"\nvalue\\' }, 2);
    const h = new Histogram({ name: 'weft_test_seconds', help: 'A histogram.', registers: [r] });
    h.observe(0.02);
    h.observe(7);
    const f = parseExposition(await r.metrics());
    assert.equal(sampleValue(f, 'weft_test_total', { reason: 'a "quoted"\nvalue\\' }), 2);
    assert.equal(sampleValue(f, 'weft_test_seconds_count'), 2);
    assert.ok(f.has('weft_process_cpu_seconds_total') && f.has('weft_nodejs_eventloop_lag_seconds'), 'process metrics, prefixed');
    for (const fam of f.values()) for (const s of fam.samples) assert.deepEqual([s.labels.cluster, s.labels.node], ['c1', 'n1'], `${s.name} has the constant labels`);
  });
});
