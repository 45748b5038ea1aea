import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BpfObject } from './bpf-object.js';
import { BpfLoadError } from './errors.js';
import { captureLibbpfMessages, libbpf, STRUCT_SIZES, structLayouts } from './libbpf.js';

const TESTDATA = join(__dirname, '..', 'testdata');

describe('libbpf bindings', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'wtdp-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('lay out every opts and info struct exactly as the C headers do', function () {
    if (spawnSync('clang', ['--version']).status !== 0) {
      console.log('      (skipped: clang is not installed)');
      return this.skip();
    }
    const exe = join(dir, 'struct-layouts');
    const built = spawnSync('clang', ['-o', exe, join(TESTDATA, 'struct-layouts.c')], { encoding: 'utf8' });
    if (built.status !== 0) {
      console.log(`      (skipped: the libbpf headers do not compile here: ${built.stderr.split('\n')[0]})`);
      return this.skip();
    }
    const c = JSON.parse(execFileSync(exe, { encoding: 'utf8' })) as Record<string, { size: number; offsets: Record<string, number> }>;
    assert.deepEqual(structLayouts(), c);
    for (const [name, size] of Object.entries(STRUCT_SIZES)) assert.equal(c[name]?.size, size, `sizeof(struct ${name})`);
  });

  it("routes libbpf's messages to the innermost capture", () => {
    const junk = join(dir, 'junk.o');
    writeFileSync(junk, 'not an ELF file');
    const outer = captureLibbpfMessages(() => {
      const inner = captureLibbpfMessages(() => libbpf().objectOpenFile(junk, { sz: STRUCT_SIZES.bpf_object_open_opts }));
      assert.equal(inner.result, null);
      assert.ok(inner.messages.some((m) => m.includes('is not a proper ELF object')), inner.messages.join('\n'));
      assert.ok(inner.messages.every((m) => !m.startsWith('libbpf: ')));
      return 1;
    });
    assert.deepEqual(outer.messages, []);
    assert.equal(libbpf().captures.length, 0);
  });

  it('reports an object libbpf cannot parse with what libbpf said', () => {
    const junk = join(dir, 'junk2.o');
    writeFileSync(junk, 'not an ELF file either');
    assert.throws(() => BpfObject.open(junk), (err: unknown) => {
      assert.ok(err instanceof BpfLoadError);
      assert.match(err.message, /^Cannot open BPF object .*junk2\.o: LIBBPF_ERRNO__FORMAT \(4001\)\n--- libbpf ---\nelf: .* is not a proper ELF object/);
      return true;
    });
    assert.throws(() => BpfObject.open(join(dir, 'missing.o')), /Cannot open BPF object .*missing\.o: no such file/);
  });
});
