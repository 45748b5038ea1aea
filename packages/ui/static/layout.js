/*
 * The service map's force layout, apart from the page so it can be tested without a browser
 * (layout.test.ts loads it into Node). Nodes repel each other, edges pull their ends together,
 * and each node is drawn to its group's centre (groups: clusters, side by side), so a cluster's
 * workloads gather in their own region. A layout is kept across updates: nodes keep their places,
 * a new node starts beside a neighbour already placed (or its group's centre), and the simulation
 * warms up again only as much as the change needs.
 *
 * Plain ES2017, no modules: the page loads it with a <script> tag (WeftLayout on the window).
 */
(function (root) {
  'use strict';

  /** A stable pseudo-random number in [0, 1) from a string: the same graph lays out the same way. */
  function hash01(text) {
    let h = 2166136261;
    for (let i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 16777619);
    }
    return ((h >>> 0) % 100000) / 100000;
  }

  /**
   * options: width, height (the area groups share), linkLength (default 130), repulsion
   * (default 16000), gravity (default 0.03), collide (the least distance between nodes, default 95).
   */
  function createLayout(options) {
    const o = Object.assign({ width: 1000, height: 700, linkLength: 190, repulsion: 16000, gravity: 0.03, collide: 95 }, options || {});
    /** id -> {id, group, x, y, vx, vy, pinned} */
    const nodes = new Map();
    let links = [];
    let groups = [];
    let alpha = 1;

    function centre(group) {
      const i = Math.max(0, groups.indexOf(group));
      const n = Math.max(1, groups.length);
      return { x: (o.width * (i + 0.5)) / n, y: o.height / 2 };
    }

    /**
     * The graph to lay out: nodes [{id, group}], links [{source, destination}] (ids). Nodes no
     * longer listed are forgotten; links to unknown nodes are ignored.
     */
    function setGraph(nodeList, linkList) {
      const seen = new Set();
      const groupSet = new Set();
      for (const n of nodeList) groupSet.add(n.group);
      const newGroups = Array.from(groupSet).sort();
      const regrouped = newGroups.join('\u0000') !== groups.join('\u0000');
      groups = newGroups;
      let added = 0;
      for (const n of nodeList) {
        seen.add(n.id);
        const have = nodes.get(n.id);
        if (have) {
          have.group = n.group;
          continue;
        }
        nodes.set(n.id, { id: n.id, group: n.group, x: NaN, y: NaN, vx: 0, vy: 0, pinned: false });
        added++;
      }
      let removed = 0;
      for (const id of Array.from(nodes.keys())) {
        if (!seen.has(id)) {
          nodes.delete(id);
          removed++;
        }
      }
      links = linkList.filter((l) => nodes.has(l.source) && nodes.has(l.destination) && l.source !== l.destination);
      // New nodes start beside a placed neighbour, else near their group's centre.
      for (const n of nodes.values()) {
        if (!Number.isNaN(n.x)) continue;
        const near = links.map((l) => (l.source === n.id ? nodes.get(l.destination) : l.destination === n.id ? nodes.get(l.source) : undefined)).find((m) => m && !Number.isNaN(m.x));
        const c = near || centre(n.group);
        const a = hash01(n.id) * Math.PI * 2;
        const r = near ? o.linkLength * 0.6 : 40 + 60 * hash01(n.id + '/r');
        n.x = c.x + Math.cos(a) * r;
        n.y = c.y + Math.sin(a) * r;
      }
      if (added || removed || regrouped) alpha = Math.max(alpha, regrouped ? 1 : Math.min(1, 0.3 + 0.05 * (added + removed)));
    }

    /** One tick; returns how much is still moving (0 when settled). */
    function step() {
      if (alpha < 0.005) return 0;
      const list = Array.from(nodes.values());
      // Repulsion and collision, every pair (the page caps what it draws at a few hundred nodes).
      for (let i = 0; i < list.length; i++) {
        const a = list[i];
        for (let j = i + 1; j < list.length; j++) {
          const b = list[j];
          let dx = a.x - b.x;
          let dy = a.y - b.y;
          let d2 = dx * dx + dy * dy;
          if (d2 < 0.01) {
            dx = hash01(a.id + b.id) - 0.5;
            dy = hash01(b.id + a.id) - 0.5;
            d2 = dx * dx + dy * dy;
          }
          const d = Math.sqrt(d2);
          // Nodes of different groups push harder: the clusters stay apart.
          let f = (o.repulsion * (a.group === b.group ? 1 : 2)) / d2;
          if (d < o.collide) f += (o.collide - d) * 0.5;
          const fx = (dx / d) * f * alpha;
          const fy = (dy / d) * f * alpha;
          a.vx += fx;
          a.vy += fy;
          b.vx -= fx;
          b.vy -= fy;
        }
      }
      for (const l of links) {
        const a = nodes.get(l.source);
        const b = nodes.get(l.destination);
        const dx = b.x - a.x;
        const dy = b.y - a.y;
        const d = Math.max(1, Math.sqrt(dx * dx + dy * dy));
        const f = ((d - o.linkLength) * 0.04 * alpha) / 2;
        a.vx += (dx / d) * f;
        a.vy += (dy / d) * f;
        b.vx -= (dx / d) * f;
        b.vy -= (dy / d) * f;
      }
      let moving = 0;
      for (const n of list) {
        const c = centre(n.group);
        n.vx += (c.x - n.x) * o.gravity * alpha;
        n.vy += (c.y - n.y) * o.gravity * alpha;
        if (n.pinned) {
          n.vx = 0;
          n.vy = 0;
          continue;
        }
        // Damped, and never a jump across the screen.
        n.vx = Math.max(-40, Math.min(40, n.vx * 0.6));
        n.vy = Math.max(-40, Math.min(40, n.vy * 0.6));
        n.x += n.vx;
        n.y += n.vy;
        moving += Math.abs(n.vx) + Math.abs(n.vy);
      }
      alpha *= 0.985;
      return list.length ? moving / list.length + alpha : 0;
    }

    /** Runs up to `ticks` steps at once (a first layout before drawing); returns the last step's motion. */
    function settle(ticks) {
      let m = 0;
      for (let i = 0; i < ticks; i++) {
        m = step();
        if (m === 0) break;
      }
      return m;
    }

    return {
      setGraph,
      step,
      settle,
      /** The node's place (undefined when unknown). */
      position: (id) => nodes.get(id),
      /** Pins a node where it is dragged (pinned) or lets it go. */
      pin(id, x, y, pinned) {
        const n = nodes.get(id);
        if (!n) return;
        n.x = x;
        n.y = y;
        n.pinned = pinned;
        alpha = Math.max(alpha, 0.3);
      },
      resize(width, height) {
        if (width === o.width && height === o.height) return;
        o.width = width;
        o.height = height;
        alpha = Math.max(alpha, 0.5);
      },
      reheat(value) {
        alpha = Math.max(alpha, value);
      },
      centre,
      get alpha() {
        return alpha;
      },
    };
  }

  const api = { createLayout, hash01 };
  root.WeftLayout = api;
  if (typeof module === 'object' && module.exports) module.exports = api;
})(typeof globalThis !== 'undefined' ? globalThis : this);
