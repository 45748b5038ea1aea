import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidResourceError } from './errors.js';
import { loadResourceFiles } from './load.js';
import { firstInvalidUtf8 } from './utf8.js';

/** `n` documents of the kinds `weft apply` takes, each `DOC_LINES` lines, separated by `---`. */
function manyDocuments(n: number): string {
  const docs: string[] = [];
  for (let i = 0; i < n; i++) {
    if (i % 4 === 0) docs.push(`apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns-${i}\n  labels:\n    team: t${i % 7}\n`);
    else if (i % 4 === 1) docs.push(`apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-${i}\n  namespace: demo\n  labels:\n    app: web-${i % 50}\nspec:\n  containers:\n    - name: main\n      command: ["weft", "echo-server", "--tcp", "8080"]\n`);
    else if (i % 4 === 2) docs.push(`apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-${i}\n  namespace: demo\nspec:\n  selector:\n    app: web-${i % 50}\n  ports:\n    - port: 80\n      targetPort: 8080\n`);
    else docs.push(`apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: allow-${i}\n  namespace: demo\nspec:\n  podSelector:\n    matchLabels:\n      app: web-${i % 50}\n  ingress:\n    - from:\n        - podSelector:\n            matchLabels:\n              role: client\n      ports:\n        - port: 8080\n          protocol: TCP\n`);
  }
  return docs.join('---\n');
}

/**
 * Characters the string operations of `fn` examine: what split, indexOf, lastIndexOf and includes
 * scan, plus what a slice copies (V8 shares the memory of longer slices, so those count as the
 * 13 characters below which it copies). A parse that looks back over the text for every document
 * (as counting newlines from the start did) scans a multiple of the text per document.
 */
function charactersExamined(fn: () => void): number {
  let n = 0;
  const P = String.prototype;
  const orig = { split: P.split, indexOf: P.indexOf, lastIndexOf: P.lastIndexOf, includes: P.includes, slice: P.slice, substring: P.substring, substr: P.substr };
  const W = P as unknown as Record<string, (this: string, ...a: never[]) => unknown>;
  W.split = function (this: string, ...a: never[]) {
    n += this.length;
    return (orig.split as (...x: unknown[]) => unknown).apply(this, a);
  };
  W.indexOf = function (this: string, s: never, from: never) {
    const start = Math.max(0, Number(from ?? 0));
    const r = orig.indexOf.call(this, s, start);
    n += (r < 0 ? this.length : r) - start + 1;
    return r;
  };
  W.lastIndexOf = function (this: string, s: never, from: never) {
    const end = Math.min(this.length, from === undefined ? Infinity : Number(from));
    const r = orig.lastIndexOf.call(this, s, end);
    n += end - (r < 0 ? 0 : r) + 1;
    return r;
  };
  W.includes = function (this: string, s: never, from: never) {
    n += this.length - Number(from ?? 0);
    return orig.includes.call(this, s, from);
  };
  for (const m of ['slice', 'substring', 'substr'] as const) {
    W[m] = function (this: string, ...a: never[]) {
      const r = (orig[m] as (...x: unknown[]) => string).apply(this, a);
      n += Math.min(r.length, 13) + 1;
      return r;
    };
  }
  try {
    fn();
  } finally {
    Object.assign(P, orig);
  }
  return n;
}

describe('loading resource files', () => {
  let dir: string;
  const file = (name: string, content: string | Buffer): string => {
    const p = join(dir, name);
    writeFileSync(p, content);
    return p;
  };
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'weft-load-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  describe('UTF-8', () => {
    const pod = (note: Buffer): Buffer =>
      Buffer.concat([Buffer.from('apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: shop\n  annotations:\n    note: "caf'), note, Buffer.from('"\nspec:\n  containers:\n    - name: main\n      command: ["weft", "echo-server"]\n')]);
    const offsetOfNote = Buffer.from('apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: shop\n  annotations:\n    note: "caf').length;

    it('refuses a file that is not UTF-8, naming the file, the byte offset and the line, instead of storing a replacement character', () => {
      const cases: Array<[string, Buffer, number]> = [
        ['Latin-1 e-acute', Buffer.from([0xe9]), offsetOfNote],
        ['a lone continuation byte', Buffer.from([0x65, 0x80]), offsetOfNote + 1],
        ['an overlong encoding', Buffer.from([0xc0, 0xaf]), offsetOfNote],
        ['a UTF-16 surrogate', Buffer.from([0xed, 0xa0, 0x80]), offsetOfNote],
        ['a sequence cut short', Buffer.from([0xe2, 0x82, 0x65]), offsetOfNote],
        ['0xff', Buffer.from([0xff]), offsetOfNote],
      ];
      for (const [what, note, offset] of cases) {
        const path = file('bad-utf8.yaml', pod(note));
        assert.throws(() => loadResourceFiles([path], 'c1'), (err: unknown) => {
          assert.ok(err instanceof InvalidResourceError, `${what}: ${String(err)}`);
          assert.match(err.message, new RegExp(`^Invalid resource ${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: not UTF-8: the bytes at byte offset ${offset} \\(line 12\\) are not a valid UTF-8 sequence \\(0x`), what);
          return true;
        });
      }
    });

    it('refuses a file that ends inside a multi-byte character', () => {
      // A valid two-byte character (U+00E2, bytes 56-57), then the first two bytes of a three-byte one.
      const path = file('cut.yaml', Buffer.concat([Buffer.from('apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n# \u00e2'), Buffer.from([0xe2, 0x82])]));
      assert.throws(() => loadResourceFiles([path], 'c1'), /not UTF-8: the bytes at byte offset 58 \(line 5\) are not a valid UTF-8 sequence \(0xe2 0x82\)/);
    });

    it('keeps valid UTF-8 exactly as written, after a byte order mark', () => {
      const path = file('good-utf8.yaml', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), pod(Buffer.from('\u00e9 \u2603 \u{1f600}'))]));
      const [, p] = loadResourceFiles([path], 'c1');
      assert.equal(p!.metadata.annotations.note, 'caf\u00e9 \u2603 \u{1f600}');
    });

    it('finds the first malformed sequence exactly', () => {
      const at = (...bytes: number[]): number => firstInvalidUtf8(Uint8Array.from(bytes));
      assert.equal(at(0x61, 0xc3, 0xa9), -1);
      assert.equal(at(0xff), 0);
      assert.equal(at(0x61, 0xe2, 0x28, 0xa1), 1, 'a lead byte not followed by a continuation');
      assert.equal(at(0xf0, 0x9f, 0x98, 0x80, 0x80), 4, 'after a complete 4-byte character');
      assert.equal(at(0x61, 0xe2, 0xe2, 0x82, 0xac), 1);
      assert.equal(at(0xf4, 0x90, 0x80, 0x80), 0, 'above U+10FFFF');
      assert.equal(at(0x61, 0x62, 0xf0, 0x9f, 0x98), 2, 'cut short at the end');
    });
  });

  describe('many documents', () => {
    it('examines each character a bounded number of times, however many documents there are', () => {
      const small = manyDocuments(250);
      const large = manyDocuments(1000);
      const smallFile = file('250.yaml', small);
      const largeFile = file('1000.yaml', large);
      let loaded = 0;
      const perCharSmall = charactersExamined(() => (loaded = loadResourceFiles([smallFile], 'c1').length)) / small.length;
      assert.equal(loaded, 250);
      const perCharLarge = charactersExamined(() => (loaded = loadResourceFiles([largeFile], 'c1').length)) / large.length;
      assert.equal(loaded, 1000);
      // Linear: the work per input character does not grow with the number of documents.
      assert.ok(perCharLarge < 20, `${perCharLarge.toFixed(1)} characters examined per input character for 1,000 documents`);
      assert.ok(perCharLarge < perCharSmall * 1.1, `per character: ${perCharSmall.toFixed(2)} for 250 documents, ${perCharLarge.toFixed(2)} for 1,000`);
    });

    it('still names the document and line of a mistake far into a large file', () => {
      const text = `${manyDocuments(2000)}---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: late\n  labels: { app: 3 }\nspec: { containers: [{ name: a, command: [x] }] }\n`;
      const line = text.split('\n').length - 6;
      const path = file('late.yaml', text);
      assert.throws(() => loadResourceFiles([path], 'c1'), new RegExp(`#2001 \\(Pod late\\) at .*late\\.yaml:${line}: metadata\\.labels\\.app: value must be a string`));
    });
  });

  it('refuses a container name that is not a DNS-1123 label (it names the pod runtime\'s log file)', () => {
    const path = file('container.yaml', 'apiVersion: v1\nkind: Pod\nmetadata: { name: p }\nspec: { containers: [{ name: "../../etc/cron.d/x", command: [x] }] }\n');
    assert.throws(() => loadResourceFiles([path], 'c1'), /spec\.containers\[0\]\.name: "\.\.\/\.\.\/etc\/cron\.d\/x" is not a valid container name/);
  });

  it('keeps containers\' named ports (TCP by default) and names the port that is wrong', () => {
    const pod = (ports: string) => file('ports.yaml', `apiVersion: v1\nkind: Pod\nmetadata: { name: p }\nspec: { containers: [{ name: a, command: [x], ports: ${ports} }, { name: b, command: [x], ports: [{ name: metrics, containerPort: 9090, protocol: UDP }] }] }\n`);
    const [r] = loadResourceFiles([pod('[{ name: web, containerPort: 8080 }, { containerPort: 22 }]')], 'c1');
    assert.deepEqual((r!.spec as { containers: Array<{ ports?: unknown }> }).containers.map((c) => c.ports), [[{ name: 'web', containerPort: 8080, protocol: 'TCP' }, { containerPort: 22, protocol: 'TCP' }], [{ name: 'metrics', containerPort: 9090, protocol: 'UDP' }]]);
    assert.throws(() => loadResourceFiles([pod('[{ name: Web_1, containerPort: 8080 }]')], 'c1'), /spec\.containers\[0\]\.ports\[0\]\.name: "Web_1" is not a valid port name/);
    assert.throws(() => loadResourceFiles([pod('[{ name: metrics, containerPort: 8080 }]')], 'c1'), /spec\.containers\[1\]\.ports\[0\]\.name: "metrics" is used twice in the pod/);
    assert.throws(() => loadResourceFiles([pod('[{ name: web, containerPort: 0 }]')], 'c1'), /spec\.containers\[0\]\.ports\[0\]\.containerPort: must be a port number 1-65535, got 0/);
  });
});
