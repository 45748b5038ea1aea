/*
 * The service map page: follows /api/events (a snapshot, then deltas and the flow sources' state),
 * keeps the nodes and edges it was sent, and draws them as SVG laid out by layout.js. Filters are
 * the server's (`cluster`, `namespace` in the page's own query string, sent on with the stream's),
 * so a filtered page receives only its part of the map.
 *
 * What tests rely on: every edge is a <g class="edge"> with data-edge (its id, e.g.
 * "c1/demo/client->c1/demo/echo:8081/TCP"), data-verdict, data-reason (the drop or audit reason;
 * empty when forwarded) and data-colour; every node a <g class="node"> with data-node, data-kind,
 * data-cluster, data-namespace; #live has data-state live | reconnecting | offline | connecting;
 * each flow source a .source with data-source and data-state.
 *
 * Plain ES2017 in one file: no framework, no build step, nothing fetched from anywhere else.
 */
(function () {
  'use strict';
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const CLUSTER_COLOURS = ['#1c7ed6', '#7048e8', '#0ca678', '#d6336c', '#f59f00', '#1098ad', '#ae3ec9', '#5c940d'];
  /** More than this many nodes and the page draws the most recently seen (the rest: filter). */
  const MAX_DRAWN_NODES = 300;
  const RADIUS = { workload: 18, pod: 14, service: 16, world: 19, host: 17, 'remote-node': 17, entity: 17 };

  const $ = (id) => document.getElementById(id);
  const svg = $('map');
  const viewport = $('viewport');
  const layers = { groups: $('groups'), edges: $('edges'), labels: $('edge-labels'), nodes: $('nodes') };

  const state = {
    nodes: new Map(),
    edges: new Map(),
    facets: { clusters: [], namespaces: [] },
    filter: readFilter(),
    sources: [],
    stats: null,
    streamOpen: false,
    selected: null,
  };
  const els = { nodes: new Map(), edges: new Map(), groups: new Map() };
  const visible = { nodes: [], edges: [] };
  const layout = WeftLayout.createLayout({ width: 1000, height: 700 });
  const view = { auto: true, x: 0, y: 0, w: 1000, h: 700 };
  let frame = 0;
  let placedOnce = false;
  let clusterColour = new Map();

  function el(name, attrs, parent) {
    const e = document.createElementNS(SVG_NS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }

  function readFilter() {
    const q = new URLSearchParams(location.search);
    const list = (name) => q.getAll(name).join(',').split(',').map((s) => s.trim()).filter(Boolean);
    return { clusters: list('cluster'), namespaces: list('namespace') };
  }

  function filterQuery() {
    const q = new URLSearchParams();
    if (state.filter.clusters.length) q.set('cluster', state.filter.clusters.join(','));
    if (state.filter.namespaces.length) q.set('namespace', state.filter.namespaces.join(','));
    return q.toString();
  }

  // --- the stream ---------------------------------------------------------------------------

  let stream = null;
  function connect() {
    if (stream) stream.close();
    state.streamOpen = false;
    showLive();
    const q = filterQuery();
    stream = new EventSource('api/events' + (q ? '?' + q : ''));
    stream.addEventListener('open', () => {
      state.streamOpen = true;
      showLive();
    });
    stream.addEventListener('error', () => {
      state.streamOpen = false;
      showLive();
    });
    stream.addEventListener('snapshot', (ev) => {
      const s = JSON.parse(ev.data);
      state.streamOpen = true;
      state.nodes.clear();
      state.edges.clear();
      applyChanges(s.nodes, s.edges, [], []);
      state.facets = s.facets;
      state.stats = s.stats;
      state.sources = s.sources;
      changed();
    });
    stream.addEventListener('delta', (ev) => {
      const d = JSON.parse(ev.data);
      applyChanges(d.nodes, d.edges, d.removedNodes, d.removedEdges);
      state.facets = d.facets;
      state.stats = d.stats;
      changed();
    });
    stream.addEventListener('status', (ev) => {
      const s = JSON.parse(ev.data);
      state.sources = s.sources;
      state.stats = s.stats;
      showLive();
      showStats();
    });
  }

  function applyChanges(nodes, edges, removedNodes, removedEdges) {
    for (const id of removedEdges) state.edges.delete(id);
    for (const id of removedNodes) state.nodes.delete(id);
    for (const n of nodes) state.nodes.set(n.id, n);
    for (const e of edges) state.edges.set(e.id, e);
    // A filtered page keeps only the nodes its edges use.
    const used = new Set();
    for (const e of state.edges.values()) {
      used.add(e.source);
      used.add(e.destination);
    }
    for (const id of Array.from(state.nodes.keys())) if (!used.has(id)) state.nodes.delete(id);
    if (state.selected && !state.nodes.has(state.selected) && !state.edges.has(state.selected)) state.selected = null;
  }

  // --- what is drawn ------------------------------------------------------------------------

  function changed() {
    chooseVisible();
    syncElements();
    showFilters();
    showStats();
    showLive();
    showDetails();
    const first = !placedOnce && visible.nodes.length > 0;
    layout.setGraph(visible.nodes.map((n) => ({ id: n.id, group: n.cluster })), visible.edges);
    // The first picture is a settled one; later changes move smoothly from the places they had.
    if (first) {
      placedOnce = true;
      layout.settle(250);
      place();
    }
    if (!frame) frame = requestAnimationFrame(tick);
  }

  function chooseVisible() {
    let nodes = Array.from(state.nodes.values());
    if (nodes.length > MAX_DRAWN_NODES) nodes = nodes.sort((a, b) => b.lastSeenMs - a.lastSeenMs).slice(0, MAX_DRAWN_NODES);
    const ids = new Set(nodes.map((n) => n.id));
    visible.nodes = nodes.sort((a, b) => (a.id < b.id ? -1 : 1));
    visible.edges = Array.from(state.edges.values()).filter((e) => ids.has(e.source) && ids.has(e.destination));
    const clusters = Array.from(new Set(state.facets.clusters.concat(visible.nodes.map((n) => n.cluster)))).sort();
    clusterColour = new Map(clusters.map((c, i) => [c, CLUSTER_COLOURS[i % CLUSTER_COLOURS.length]]));
    // Parallel edges (several ports, or both directions) curve apart: each gets its place in its pair.
    const pairs = new Map();
    for (const e of visible.edges) {
      const key = e.source < e.destination ? e.source + '\u0000' + e.destination : e.destination + '\u0000' + e.source;
      if (!pairs.has(key)) pairs.set(key, []);
      pairs.get(key).push(e);
    }
    for (const list of pairs.values()) {
      list.sort((a, b) => (a.id < b.id ? -1 : 1));
      list.forEach((e, i) => {
        e._bend = list.length === 1 && e.source !== e.destination ? 0 : (i - (list.length - 1) / 2) * 34;
        e._loop = i;
      });
    }
  }

  function syncElements() {
    const keepNodes = new Set(visible.nodes.map((n) => n.id));
    for (const [id, x] of els.nodes) if (!keepNodes.has(id)) { x.g.remove(); els.nodes.delete(id); }
    for (const n of visible.nodes) drawNode(n);
    const keepEdges = new Set(visible.edges.map((e) => e.id));
    for (const [id, x] of els.edges) if (!keepEdges.has(id)) { x.g.remove(); x.label.remove(); els.edges.delete(id); }
    for (const e of visible.edges) drawEdge(e);
    const clusters = new Set(visible.nodes.map((n) => n.cluster));
    for (const [c, x] of els.groups) if (!clusters.has(c)) { x.g.remove(); els.groups.delete(c); }
    for (const c of clusters) {
      let x = els.groups.get(c);
      if (!x) {
        const g = el('g', { class: 'group', 'data-cluster': c }, layers.groups);
        x = { g, rect: el('rect', { rx: 14 }, g), text: el('text', {}, g) };
        x.text.textContent = 'cluster ' + c;
        els.groups.set(c, x);
      }
      const colour = clusterColour.get(c);
      x.rect.setAttribute('fill', colour);
      x.rect.setAttribute('stroke', colour);
      x.text.setAttribute('fill', colour);
    }
    $('empty').hidden = visible.edges.length > 0;
  }

  function drawNode(n) {
    let x = els.nodes.get(n.id);
    if (!x) {
      const g = el('g', { class: 'node' }, layers.nodes);
      const r = RADIUS[n.kind] || 16;
      let shape;
      if (n.kind === 'service') shape = el('rect', { class: 'shape', x: -r, y: -r, width: 2 * r, height: 2 * r, rx: 5 }, g);
      else if (n.kind === 'workload' || n.kind === 'pod') shape = el('circle', { class: 'shape', r }, g);
      else {
        const pts = [];
        for (let i = 0; i < 6; i++) pts.push((r * Math.cos((Math.PI / 3) * i + Math.PI / 6)).toFixed(1) + ',' + (r * Math.sin((Math.PI / 3) * i + Math.PI / 6)).toFixed(1));
        shape = el('polygon', { class: 'shape', points: pts.join(' ') }, g);
      }
      const title = el('title', {}, g);
      const text = el('text', { y: r + 14 }, g);
      const sub = el('text', { class: 'sub', y: r + 26 }, g);
      x = { g, shape, title, text, sub };
      els.nodes.set(n.id, x);
    }
    x.g.setAttribute('data-node', n.id);
    x.g.setAttribute('data-kind', n.kind);
    x.g.setAttribute('data-cluster', n.cluster);
    x.g.setAttribute('data-namespace', n.namespace);
    x.g.classList.toggle('selected', state.selected === n.id);
    const colour = clusterColour.get(n.cluster) || '#495057';
    if (n.kind === 'workload' || n.kind === 'pod') {
      x.shape.setAttribute('fill', tint(colour));
      x.shape.setAttribute('stroke', colour);
    } else if (n.kind === 'service') x.shape.setAttribute('stroke', colour);
    x.text.textContent = n.name;
    x.sub.textContent = n.kind === 'service' ? 'service ' + n.namespace : n.namespace ? n.namespace + (n.podCount > 1 ? ' \u00b7 ' + n.podCount + ' pods' : '') : n.kind;
    x.title.textContent = nodeText(n);
  }

  function drawEdge(e) {
    let x = els.edges.get(e.id);
    if (!x) {
      const g = el('g', { class: 'edge' }, layers.edges);
      const title = el('title', {}, g);
      const line = el('path', { class: 'line' }, g);
      const hit = el('path', { class: 'hit' }, g);
      const label = el('text', { class: 'edge-label', 'text-anchor': 'middle' }, layers.labels);
      const port = el('tspan', {}, label);
      const reason = el('tspan', { class: 'reason' }, label);
      x = { g, title, line, hit, label, port, reason };
      els.edges.set(e.id, x);
    }
    const reason = e.verdict === 'FORWARDED' ? '' : e.lastDropReason;
    x.g.setAttribute('data-edge', e.id);
    x.g.setAttribute('data-verdict', e.verdict);
    x.g.setAttribute('data-reason', reason);
    x.g.setAttribute('data-colour', e.colour);
    x.g.classList.toggle('selected', state.selected === e.id);
    x.line.setAttribute('stroke', e.colour);
    x.line.setAttribute('marker-end', 'url(#arrow-' + e.verdict + ')');
    x.label.setAttribute('fill', e.colour);
    x.label.setAttribute('data-label-for', e.id);
    x.port.textContent = (e.port ? e.port + '/' : '') + e.protocol;
    x.reason.textContent = reason ? ' \u00b7 ' + reason : '';
    x.title.textContent = edgeText(e);
  }

  function tint(hex) {
    const n = parseInt(hex.slice(1), 16);
    const mix = (v) => Math.round(v + (255 - v) * 0.72);
    return 'rgb(' + mix(n >> 16) + ',' + mix((n >> 8) & 255) + ',' + mix(n & 255) + ')';
  }

  function when(ms) {
    return ms ? new Date(ms).toLocaleTimeString() : '-';
  }

  function nodeText(n) {
    const lines = [n.id, n.kind + (n.namespace ? ' in ' + n.namespace : '') + ', cluster ' + n.cluster];
    if (n.labels.length) lines.push('labels: ' + n.labels.join(', '));
    if (n.pods.length) lines.push('pods: ' + n.pods.join(', ') + (n.podCount > n.pods.length ? ' (' + n.podCount + ' in all)' : ''));
    if (n.address) lines.push('address: ' + n.address);
    lines.push('last seen ' + when(n.lastSeenMs));
    return lines.join('\n');
  }

  function edgeText(e) {
    const lines = [e.source + ' \u2192 ' + e.destination, (e.port ? e.port + '/' : '') + e.protocol + ': ' + e.verdict + (e.verdict !== 'FORWARDED' && e.lastDropReason ? ' (' + e.lastDropReason + ')' : '')];
    lines.push('flows: ' + e.counts.FORWARDED + ' forwarded, ' + e.counts.DROPPED + ' dropped, ' + e.counts.AUDIT + ' audit');
    const reasons = Object.keys(e.dropReasons).map((r) => r + ' \u00d7' + e.dropReasons[r]);
    if (reasons.length) lines.push('reasons: ' + reasons.join(', '));
    if (e.policy) lines.push('rule: ' + e.policy);
    lines.push('last seen ' + when(e.lastSeenMs));
    return lines.join('\n');
  }

  // --- every frame: places ------------------------------------------------------------------

  function tick() {
    frame = 0;
    const box = $('canvas').getBoundingClientRect();
    layout.resize(Math.max(400, box.width), Math.max(300, box.height));
    const moving = layout.step();
    place();
    if (moving > 0.02 || dragging) frame = requestAnimationFrame(tick);
  }

  function place() {
    const bounds = { x0: Infinity, y0: Infinity, x1: -Infinity, y1: -Infinity };
    const groupBounds = new Map();
    for (const n of visible.nodes) {
      const p = layout.position(n.id);
      const x = els.nodes.get(n.id);
      if (!p || !x) continue;
      x.g.setAttribute('transform', 'translate(' + p.x.toFixed(1) + ',' + p.y.toFixed(1) + ')');
      bounds.x0 = Math.min(bounds.x0, p.x);
      bounds.y0 = Math.min(bounds.y0, p.y);
      bounds.x1 = Math.max(bounds.x1, p.x);
      bounds.y1 = Math.max(bounds.y1, p.y);
      let g = groupBounds.get(n.cluster);
      if (!g) groupBounds.set(n.cluster, (g = { x0: p.x, y0: p.y, x1: p.x, y1: p.y }));
      g.x0 = Math.min(g.x0, p.x);
      g.y0 = Math.min(g.y0, p.y);
      g.x1 = Math.max(g.x1, p.x);
      g.y1 = Math.max(g.y1, p.y);
    }
    for (const [c, g] of groupBounds) {
      const x = els.groups.get(c);
      if (!x) continue;
      const pad = 48;
      x.rect.setAttribute('x', (g.x0 - pad).toFixed(1));
      x.rect.setAttribute('y', (g.y0 - pad).toFixed(1));
      x.rect.setAttribute('width', (g.x1 - g.x0 + 2 * pad).toFixed(1));
      x.rect.setAttribute('height', (g.y1 - g.y0 + 2 * pad + 20).toFixed(1));
      x.text.setAttribute('x', (g.x0 - pad + 10).toFixed(1));
      x.text.setAttribute('y', (g.y0 - pad + 18).toFixed(1));
    }
    for (const e of visible.edges) placeEdge(e);
    if (view.auto && bounds.x0 !== Infinity) {
      const m = 90;
      view.x = bounds.x0 - m;
      view.y = bounds.y0 - m;
      view.w = Math.max(300, bounds.x1 - bounds.x0 + 2 * m);
      view.h = Math.max(200, bounds.y1 - bounds.y0 + 2 * m);
    }
    svg.setAttribute('viewBox', [view.x, view.y, view.w, view.h].map((v) => v.toFixed(1)).join(' '));
  }

  function placeEdge(e) {
    const x = els.edges.get(e.id);
    const a = layout.position(e.source);
    const b = layout.position(e.destination);
    if (!x || !a || !b) return;
    const ra = (RADIUS[(state.nodes.get(e.source) || {}).kind] || 16) + 3;
    const rb = (RADIUS[(state.nodes.get(e.destination) || {}).kind] || 16) + 5;
    let d;
    let lx;
    let ly;
    if (e.source === e.destination) {
      const s = 46 + e._loop * 18;
      d = 'M' + (a.x - 8) + ',' + (a.y - ra) + ' C' + (a.x - s) + ',' + (a.y - 2 * s) + ' ' + (a.x + s) + ',' + (a.y - 2 * s) + ' ' + (a.x + 8) + ',' + (a.y - rb);
      lx = a.x;
      ly = a.y - 1.5 * s - 4;
    } else {
      // The bend is measured on the pair's own direction (lower id first), so A->B and B->A part.
      const [p, q] = e.source < e.destination ? [a, b] : [b, a];
      const len = Math.max(1, Math.hypot(q.x - p.x, q.y - p.y));
      const nx = -(q.y - p.y) / len;
      const ny = (q.x - p.x) / len;
      const mx = (a.x + b.x) / 2 + nx * e._bend;
      const my = (a.y + b.y) / 2 + ny * e._bend;
      const cx = 2 * mx - (a.x + b.x) / 2;
      const cy = 2 * my - (a.y + b.y) / 2;
      const from = towards(a, { x: cx, y: cy }, ra);
      const to = towards(b, { x: cx, y: cy }, rb);
      d = 'M' + from.x.toFixed(1) + ',' + from.y.toFixed(1) + ' Q' + cx.toFixed(1) + ',' + cy.toFixed(1) + ' ' + to.x.toFixed(1) + ',' + to.y.toFixed(1);
      lx = mx;
      ly = my - 4;
    }
    x.line.setAttribute('d', d);
    x.hit.setAttribute('d', d);
    x.label.setAttribute('x', lx.toFixed(1));
    x.label.setAttribute('y', ly.toFixed(1));
  }

  function towards(p, q, r) {
    const len = Math.max(1, Math.hypot(q.x - p.x, q.y - p.y));
    return { x: p.x + ((q.x - p.x) / len) * r, y: p.y + ((q.y - p.y) / len) * r };
  }

  // --- pointer: drag nodes, pan, zoom, select -----------------------------------------------

  let dragging = null;
  let lastPressed = null;
  function svgPoint(ev) {
    const m = svg.getScreenCTM();
    if (!m) return { x: 0, y: 0 };
    const p = new DOMPoint(ev.clientX, ev.clientY).matrixTransform(m.inverse());
    return { x: p.x, y: p.y };
  }

  // One handler for the whole map (the pointer is captured, so later events all come to the svg):
  // a press on a node drags it, elsewhere pans; a press that does not move selects what it was on.
  svg.addEventListener('pointerdown', (ev) => {
    const nodeG = ev.target.closest && ev.target.closest('.node');
    const edgeG = ev.target.closest && ev.target.closest('.edge');
    const node = nodeG ? nodeG.getAttribute('data-node') : null;
    dragging = { id: node, pick: node || (edgeG ? edgeG.getAttribute('data-edge') : null), moved: false, start: svgPoint(ev) };
    lastPressed = node;
    svg.setPointerCapture(ev.pointerId);
    if (!frame) frame = requestAnimationFrame(tick);
  });
  svg.addEventListener('pointermove', (ev) => {
    if (!dragging) return;
    const p = svgPoint(ev);
    if (Math.hypot(p.x - dragging.start.x, p.y - dragging.start.y) > 3) dragging.moved = true;
    if (!dragging.moved) return;
    if (dragging.id) layout.pin(dragging.id, p.x, p.y, true);
    else {
      view.auto = false;
      view.x -= p.x - dragging.start.x;
      view.y -= p.y - dragging.start.y;
    }
    place();
  });
  svg.addEventListener('pointerup', () => {
    if (dragging && !dragging.moved) select(dragging.pick);
    dragging = null;
  });
  svg.addEventListener('dblclick', () => {
    // A double click on a node lets it go back to the layout (the captured pointer's events come to
    // the svg, so the node is the one last pressed).
    const p = lastPressed && layout.position(lastPressed);
    if (p) layout.pin(p.id, p.x, p.y, false);
    if (!frame) frame = requestAnimationFrame(tick);
  });
  svg.addEventListener('wheel', (ev) => {
    ev.preventDefault();
    const p = svgPoint(ev);
    const k = ev.deltaY > 0 ? 1.15 : 1 / 1.15;
    view.auto = false;
    view.x = p.x - (p.x - view.x) * k;
    view.y = p.y - (p.y - view.y) * k;
    view.w *= k;
    view.h *= k;
    place();
  }, { passive: false });
  $('fit').addEventListener('click', () => {
    view.auto = true;
    place();
  });

  function select(id) {
    state.selected = id && state.selected !== id ? id : null;
    for (const [nid, x] of els.nodes) x.g.classList.toggle('selected', nid === state.selected);
    for (const [eid, x] of els.edges) x.g.classList.toggle('selected', eid === state.selected);
    showDetails();
  }

  function showDetails() {
    const box = $('details');
    const body = $('details-body');
    const n = state.selected && state.nodes.get(state.selected);
    const e = state.selected && state.edges.get(state.selected);
    box.hidden = !n && !e;
    body.textContent = '';
    const text = n ? nodeText(n) : e ? edgeText(e) : '';
    for (const line of text.split('\n').filter(Boolean)) {
      const dd = document.createElement('dd');
      dd.textContent = line;
      body.appendChild(dd);
    }
  }

  // --- header and controls ------------------------------------------------------------------

  function showLive() {
    const live = $('live');
    let s;
    let text;
    const waiting = state.sources.filter((x) => x.state !== 'following');
    if (!state.streamOpen) {
      s = stream && stream.readyState === EventSource.CONNECTING && state.nodes.size === 0 && !live.dataset.wasLive ? 'connecting' : 'offline';
      text = s === 'connecting' ? 'connecting' : 'weft ui unreachable, retrying';
    } else if (state.sources.length && waiting.length === 0) {
      s = 'live';
      text = 'live';
      live.dataset.wasLive = '1';
    } else {
      s = 'reconnecting';
      text = waiting.length ? 'flows paused: ' + waiting.map((x) => x.source + ' ' + x.state).join(', ') : 'waiting for the flow source';
    }
    live.setAttribute('data-state', s);
    $('live-text').textContent = text;
    const box = $('sources');
    box.textContent = '';
    for (const src of state.sources) {
      const span = document.createElement('span');
      span.className = 'source';
      span.setAttribute('data-source', src.source);
      span.setAttribute('data-state', src.state);
      let t = src.source + ': ' + src.state;
      if (src.state === 'following') t += ' \u00b7 ' + src.connectedNodes + ' node' + (src.connectedNodes === 1 ? '' : 's');
      if (src.unavailableNodes.length) t += ' \u00b7 unreachable: ' + src.unavailableNodes.join(', ');
      if (src.lostFlows) t += ' \u00b7 ' + src.lostFlows + ' flows lost';
      span.textContent = t;
      if (src.error) span.title = src.error;
      box.appendChild(span);
    }
  }

  function showStats() {
    const s = state.stats;
    const shown = visible.nodes.length < state.nodes.size ? ' (showing the ' + visible.nodes.length + ' most recent of ' + state.nodes.size + ': filter to see the rest)' : '';
    $('stats').textContent = visible.nodes.length + ' nodes \u00b7 ' + visible.edges.length + ' edges' + shown + (s ? ' \u00b7 ' + s.flows + ' flows' : '');
  }

  function showFilters() {
    choices($('filter-clusters'), state.facets.clusters, state.filter.clusters, (v) => (state.filter.clusters = v));
    choices($('filter-namespaces'), state.facets.namespaces, state.filter.namespaces, (v) => (state.filter.namespaces = v));
  }

  function choices(box, facets, chosen, set) {
    const values = Array.from(new Set(facets.concat(chosen))).sort();
    const key = values.join(',') + '|' + chosen.join(',');
    if (box.dataset.key === key) return;
    box.dataset.key = key;
    box.textContent = '';
    if (values.length === 0) {
      const none = document.createElement('div');
      none.className = 'none';
      none.textContent = 'none seen yet';
      box.appendChild(none);
    }
    for (const v of values) {
      const label = document.createElement('label');
      const input = document.createElement('input');
      input.type = 'checkbox';
      input.value = v;
      input.checked = chosen.includes(v);
      input.setAttribute('data-value', v);
      input.addEventListener('change', () => {
        const now = Array.from(box.querySelectorAll('input:checked')).map((i) => i.value);
        set(now);
        refilter();
      });
      label.appendChild(input);
      label.appendChild(document.createTextNode(' ' + v));
      box.appendChild(label);
    }
  }

  function refilter() {
    const q = filterQuery();
    history.replaceState(null, '', location.pathname + (q ? '?' + q : ''));
    view.auto = true;
    placedOnce = false;
    connect();
  }

  $('clear-filters').addEventListener('click', () => {
    state.filter = { clusters: [], namespaces: [] };
    refilter();
  });
  window.addEventListener('resize', () => {
    layout.reheat(0.2);
    if (!frame) frame = requestAnimationFrame(tick);
  });

  showFilters();
  connect();
})();
