// Repository-wide checks: dependency direction, no import cycles, every error
// code documented. Plain JS so it needs no build of its own.
'use strict';
const assert = require('node:assert/strict');
const { readFileSync, readdirSync, statSync } = require('node:fs');
const { join, dirname, resolve, relative } = require('node:path');

const ROOT = resolve(__dirname, '..');
// Lower layers first; a package may import only packages ranked below it.
const LAYERS = ['common', 'metrics', 'kvstore', 'identity', 'policy', 'resources', 'kubernetes', 'net', 'datapath', 'schema', 'observer', 'ui', 'agent', 'clustermesh', 'cni', 'lab', 'cli'];

function sources(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

function imports(file) {
  const text = readFileSync(file, 'utf8');
  const re = /(?:import|export)\s[^'";]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
  const found = [];
  for (let m; (m = re.exec(text)); ) found.push(m[1] ?? m[2]);
  return found;
}

describe('repository', () => {
  const packages = readdirSync(join(ROOT, 'packages'));

  it('knows the layer of every package', () => {
    for (const p of packages) assert.ok(LAYERS.includes(p), `packages/${p} is missing from LAYERS in test/repo.test.js`);
  });

  it('keeps dependencies pointing one way: common <- kvstore <- identity <- cli', () => {
    for (const p of packages) {
      const manifest = JSON.parse(readFileSync(join(ROOT, 'packages', p, 'package.json'), 'utf8'));
      for (const file of sources(join(ROOT, 'packages', p, 'src'))) {
        for (const spec of imports(file)) {
          const m = /^@weft\/([^/]+)/.exec(spec);
          if (!m) continue;
          const dep = m[1];
          assert.ok(LAYERS.indexOf(dep) < LAYERS.indexOf(p), `${relative(ROOT, file)} imports @weft/${dep}, which is not below ${p}`);
          // Tests may use what only tests need (devDependencies); the package itself may not.
          const declared = { ...manifest.dependencies, ...(file.endsWith('.test.ts') ? manifest.devDependencies : {}) };
          assert.ok(declared[`@weft/${dep}`], `packages/${p}/package.json does not declare @weft/${dep}${file.endsWith('.test.ts') ? '' : ' under dependencies'}`);
        }
      }
    }
  });

  it('reaches another package only through what it exports: every package declares exports, nothing imports a dist/ path', () => {
    for (const p of packages) {
      const manifest = JSON.parse(readFileSync(join(ROOT, 'packages', p, 'package.json'), 'utf8'));
      assert.equal(typeof manifest.exports, 'object', `packages/${p}/package.json declares no exports`);
    }
    const offenders = [];
    const files = [...packages.flatMap((p) => sources(join(ROOT, 'packages', p, 'src'))), ...sources(join(ROOT, 'bench', 'src'))];
    for (const file of files) for (const spec of imports(file)) if (/^@weft\/[^/]+\/dist(\/|$)/.test(spec)) offenders.push(`${relative(ROOT, file)}: ${spec}`);
    for (const dir of ['e2e', 'test']) {
      for (const file of readdirSync(join(ROOT, dir)).filter((f) => f.endsWith('.js')).map((f) => join(ROOT, dir, f))) {
        for (const m of readFileSync(file, 'utf8').matchAll(/require\(\s*['"](@weft\/[^/'"]+\/dist[^'"]*)['"]/g)) offenders.push(`${relative(ROOT, file)}: ${m[1]}`);
      }
    }
    assert.deepEqual(offenders, [], 'imports of another package\'s dist/ (use the package or a subpath it exports)');
  });

  it('keeps the clustermesh-apiserver independent of the agent (records and admission rules are @weft/schema\'s)', () => {
    const manifest = JSON.parse(readFileSync(join(ROOT, 'packages', 'clustermesh', 'package.json'), 'utf8'));
    assert.equal(manifest.dependencies['@weft/agent'], undefined, 'only its tests may use the agent (devDependencies)');
    for (const file of sources(join(ROOT, 'packages', 'clustermesh', 'src'))) {
      if (file.endsWith('.test.ts')) continue;
      assert.ok(!imports(file).some((s) => s.startsWith('@weft/agent')), `${relative(ROOT, file)} imports @weft/agent`);
    }
  });

  it('has no import cycles inside a package', () => {
    for (const p of packages) {
      const graph = new Map();
      for (const file of sources(join(ROOT, 'packages', p, 'src'))) {
        const deps = imports(file)
          .filter((s) => s.startsWith('.'))
          .map((s) => resolve(dirname(file), s.replace(/\.js$/, '.ts')));
        graph.set(file, deps);
      }
      const state = new Map();
      const visit = (node, path) => {
        if (state.get(node) === 'done') return;
        if (state.get(node) === 'active') {
          const cycle = path.slice(path.indexOf(node)).concat(node).map((f) => relative(ROOT, f));
          assert.fail(`import cycle: ${cycle.join(' -> ')}`);
        }
        state.set(node, 'active');
        for (const d of graph.get(node) ?? []) visit(d, path.concat(node));
        state.set(node, 'done');
      };
      for (const node of graph.keys()) visit(node, []);
    }
  });

  it('names the same Kubernetes tool versions in hack/kube/build.sh and packages/lab (where the tools are looked for)', () => {
    const script = readFileSync(join(ROOT, 'hack', 'kube', 'build.sh'), 'utf8');
    const tools = readFileSync(join(ROOT, 'packages', 'lab', 'src', 'kube', 'tools.ts'), 'utf8');
    for (const [sh, ts] of [['KUBE_VERSION', 'KUBE_VERSION'], ['HELM_VERSION', 'HELM_VERSION'], ['ETCD_VERSION', 'KUBE_ETCD_VERSION'], ['CONTAINERD_VERSION', 'CONTAINERD_VERSION']]) {
      const a = new RegExp(`^${sh}=(v[0-9.]+)$`, 'm').exec(script)?.[1];
      const b = new RegExp(`export const ${ts} = '(v[0-9.]+)';`).exec(tools)?.[1];
      assert.ok(a && a === b, `${sh}: build.sh has ${a}, tools.ts has ${b}`);
    }
  });

  it('has the observer types generated from proto/observer.proto as committed (npm run gen -w @weft/observer)', function () {
    this.timeout(60_000);
    const { mkdtempSync, rmSync } = require('node:fs');
    const { tmpdir } = require('node:os');
    const { execFileSync } = require('node:child_process');
    const pkg = join(ROOT, 'packages', 'observer');
    const script = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')).scripts.gen;
    const out = mkdtempSync(join(tmpdir(), 'weft-gen-'));
    try {
      const args = script.split(' ').slice(1).map((a) => (a === '--outDir=src/gen' ? `--outDir=${out}` : a));
      execFileSync(process.execPath, [require.resolve('@grpc/proto-loader/build/bin/proto-loader-gen-types.js', { paths: [pkg] }), ...args], { cwd: pkg });
      const tree = (dir) => sources(dir).map((f) => [relative(dir, f), readFileSync(f, 'utf8')]).sort();
      assert.deepEqual(tree(out), tree(join(pkg, 'src', 'gen')), 'src/gen differs from what the proto generates: run npm run gen -w @weft/observer');
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('documents every error code in docs/errors.md', () => {
    const doc = readFileSync(join(ROOT, 'docs', 'errors.md'), 'utf8');
    const codes = new Set();
    for (const p of packages) {
      for (const file of sources(join(ROOT, 'packages', p, 'src'))) {
        if (file.endsWith('.test.ts')) continue;
        for (const m of readFileSync(file, 'utf8').matchAll(/'(WEFT_ERR_[A-Z_]+)'/g)) codes.add(m[1]);
      }
    }
    assert.ok(codes.size > 10, 'found the error codes');
    const missing = [...codes].filter((c) => !doc.includes(`\`${c}\``));
    assert.deepEqual(missing, [], 'codes missing from docs/errors.md');
  });
});
