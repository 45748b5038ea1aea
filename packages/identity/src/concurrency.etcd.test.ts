import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { useTestEtcd } from '@weft/kvstore';
import { IdentityLayout } from './layout.js';

const WORKER = join(__dirname, 'testdata', 'alloc-worker.js');

function runWorker(endpoint: string, node: string, indices: number[], hold = false): { child: ChildProcess; result: Promise<Record<string, number>> } {
  const child = spawn(process.execPath, [WORKER, endpoint, node, indices.join(','), ...(hold ? ['--hold'] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const result = new Promise<Record<string, number>>((resolve, reject) => {
    const check = (): void => {
      const line = out.split('\n')[0];
      if (out.includes('\n')) resolve(JSON.parse(line!) as Record<string, number>);
    };
    child.stdout!.on('data', check);
    child.on('exit', (code) => (code === 0 ? check() : reject(new Error(`worker ${node} exited ${code}: ${err}`))));
  });
  return { child, result };
}

/** A deterministic shuffle, so a failure can be replayed. */
function shuffled(n: number, seed: number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  let s = seed;
  for (let i = n - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    const j = s % (i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

describe('allocators in separate processes @etcd', function () {
  this.timeout(120_000);
  const t = useTestEtcd('concurrency-test');
  const layout = new IdentityLayout();
  const children: ChildProcess[] = [];

  afterEach(async () => {
    for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
    await t.kv.deletePrefix(layout.root);
  });

  it('never gives two label sets one id, nor one label set two ids', async () => {
    const N = 4;
    const SETS = 300;
    // Each process allocates an overlapping 200 of the 300 label sets, in its own order.
    const workers = Array.from({ length: N }, (_, w) => runWorker(t.etcd.endpoint, `proc-${w}`, shuffled(SETS, w + 1).slice(0, 200)));
    children.push(...workers.map((w) => w.child));
    const results = await Promise.all(workers.map((w) => w.result));
    const idOf = new Map<string, number>();
    const labelsOf = new Map<number, string>();
    for (const r of results) {
      for (const [labels, id] of Object.entries(r)) {
        assert.equal(idOf.get(labels) ?? id, id, `labels ${labels} got two ids`);
        assert.equal(labelsOf.get(id) ?? labels, labels, `id ${id} given to two label sets`);
        idOf.set(labels, id);
        labelsOf.set(id, labels);
      }
    }
    const masters = (await t.kv.list(layout.mastersPrefix)).items;
    assert.equal(masters.length, idOf.size, 'one master key per label set, no orphans from lost races');
    for (const m of masters) assert.equal(idOf.get(m.value.toString()), Number(m.key.slice(layout.mastersPrefix.length)));
  });

  it('frees the references of a process killed with SIGKILL once its lease expires', async () => {
    const w = runWorker(t.etcd.endpoint, 'doomed', [1, 2, 3], true);
    children.push(w.child);
    const ids = Object.values(await w.result);
    for (const id of ids) assert.ok(await t.kv.get(layout.ref(id, 'doomed')));
    w.child.kill('SIGKILL');
    const deadline = Date.now() + 10_000;
    while ((await t.kv.count(layout.refsPrefix)) > 0) {
      assert.ok(Date.now() < deadline, 'references expired with the lease');
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal((await t.kv.list(layout.mastersPrefix)).items.length, 3, 'identities remain until gc');
  });
});
