import assert from 'node:assert/strict';
import { prefixContains, rangeToPrefixes } from './ports.js';

function expand(prefixes: Array<{ port: number; bits: number }>): number[] {
  return prefixes.flatMap((p) => Array.from({ length: 2 ** (16 - p.bits) }, (_, i) => p.port + i));
}

describe('port ranges as prefixes', () => {
  it('covers exactly the range, with aligned blocks', () => {
    for (const [from, to] of [[80, 80], [8080, 8090], [1, 65535], [0, 65535], [1024, 2047], [30000, 32767], [5, 6]] as const) {
      const prefixes = rangeToPrefixes(from, to);
      assert.deepEqual(expand(prefixes), Array.from({ length: to - from + 1 }, (_, i) => from + i), `${from}-${to}`);
      for (const p of prefixes) assert.equal(p.port % 2 ** (16 - p.bits), 0, 'aligned');
      assert.ok(prefixes.length <= 30);
    }
    assert.deepEqual(rangeToPrefixes(80, 80), [{ port: 80, bits: 16 }]);
    assert.deepEqual(rangeToPrefixes(1024, 2047), [{ port: 1024, bits: 6 }]);
  });

  it('tells containment', () => {
    assert.ok(prefixContains({ port: 1024, bits: 6 }, { port: 1500, bits: 16 }));
    assert.ok(!prefixContains({ port: 1024, bits: 6 }, { port: 2048, bits: 16 }));
    assert.ok(!prefixContains({ port: 80, bits: 16 }, { port: 80, bits: 15 }));
  });
});
