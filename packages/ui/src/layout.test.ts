// The page's force layout (static/layout.js), run in Node: groups apart, linked nodes close,
// places kept across updates, no NaN.
import assert from 'node:assert/strict';
import { join } from 'node:path';

interface Point { id: string; x: number; y: number }
interface Layout {
  setGraph(nodes: Array<{ id: string; group: string }>, links: Array<{ source: string; destination: string }>): void;
  settle(ticks: number): number;
  position(id: string): Point | undefined;
}
const { createLayout } = require(join(__dirname, '..', 'static', 'layout.js')) as { createLayout: (o: object) => Layout };

const dist = (a: Point, b: Point): number => Math.hypot(a.x - b.x, a.y - b.y);

describe('the page\'s layout (static/layout.js)', () => {
  const nodes = [
    ...['client', 'echo', 'db', 'web', 'cache'].map((n) => ({ id: `c1/demo/${n}`, group: 'c1' })),
    ...['client', 'echo', 'db'].map((n) => ({ id: `c2/demo/${n}`, group: 'c2' })),
    { id: 'c1/world', group: 'c1' },
  ];
  const links = [
    { source: 'c1/demo/client', destination: 'c1/demo/echo' },
    { source: 'c1/demo/echo', destination: 'c1/demo/db' },
    { source: 'c1/demo/client', destination: 'c2/demo/echo' },
    { source: 'c2/demo/client', destination: 'c2/demo/echo' },
    { source: 'c2/demo/echo', destination: 'c2/demo/db' },
    { source: 'c1/world', destination: 'c1/demo/web' },
    { source: 'c1/demo/web', destination: 'c1/demo/cache' },
  ];

  it('settles with clusters side by side, nodes apart, and no NaN', () => {
    const layout = createLayout({ width: 1200, height: 700 });
    layout.setGraph(nodes, links);
    assert.ok(layout.settle(600) < 0.5, 'it settles');
    const p = (id: string): Point => layout.position(id)!;
    for (const n of nodes) assert.ok(Number.isFinite(p(n.id).x) && Number.isFinite(p(n.id).y), n.id);
    const meanX = (g: string): number => nodes.filter((n) => n.group === g).reduce((s, n) => s + p(n.id).x, 0) / nodes.filter((n) => n.group === g).length;
    assert.ok(meanX('c1') + 150 < meanX('c2'), `c1 left of c2: ${meanX('c1')} ${meanX('c2')}`);
    for (let i = 0; i < nodes.length; i++) for (let j = i + 1; j < nodes.length; j++) assert.ok(dist(p(nodes[i]!.id), p(nodes[j]!.id)) > 30, `${nodes[i]!.id} and ${nodes[j]!.id} overlap`);
    assert.ok(dist(p('c1/demo/echo'), p('c1/demo/db')) < dist(p('c1/demo/db'), p('c2/demo/db')), 'linked nodes are closer than strangers');
  });

  it('is the same for the same graph, and keeps places when a node joins', () => {
    const a = createLayout({ width: 1200, height: 700 });
    const b = createLayout({ width: 1200, height: 700 });
    a.setGraph(nodes, links);
    b.setGraph(nodes, links);
    a.settle(300);
    b.settle(300);
    assert.deepEqual(a.position('c1/demo/db'), b.position('c1/demo/db'));
    const before = { ...a.position('c2/demo/db')! };
    a.setGraph([...nodes, { id: 'c1/demo/new', group: 'c1' }], [...links, { source: 'c1/demo/new', destination: 'c1/demo/echo' }]);
    a.settle(300);
    assert.ok(dist(before, a.position('c2/demo/db')!) < 150, 'a far node barely moves');
    assert.ok(dist(a.position('c1/demo/new')!, a.position('c1/demo/echo')!) < 300, 'the new node sits by its neighbour');
    a.setGraph(nodes.filter((n) => n.id !== 'c1/world'), links);
    assert.equal(a.position('c1/world'), undefined);
  });
});
