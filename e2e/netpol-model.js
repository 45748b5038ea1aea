// The NetworkPolicy e2e suite's model (after Kubernetes' test/e2e/network/netpol): namespaces x, y,
// z with pods a, b, c, and a truth table of which pod may reach which. A case starts from "all
// allowed" and sets rows (a client's egress), columns (a server's ingress) or cells, then the
// table is compared with what the probes saw. Loopback (a pod to itself) is left out, as upstream
// leaves it out: CNIs disagree on it and NetworkPolicy does not say.
'use strict';

const NAMESPACES = ['x', 'y', 'z'];
const POD_NAMES = ['a', 'b', 'c'];
const PODS = NAMESPACES.flatMap((ns) => POD_NAMES.map((p) => `${ns}/${p}`));

/** `{namespace, pod}` with either left out matches every namespace or every pod. */
function peerMatches(peer, ref) {
  const [ns, pod] = ref.split('/');
  return (peer.namespace === undefined || peer.namespace === ns) && (peer.pod === undefined || peer.pod === pod);
}

class Reachability {
  constructor(allowed = true) {
    this.cells = new Map();
    for (const from of PODS) for (const to of PODS) this.cells.set(`${from}>${to}`, allowed);
  }

  expect(from, to, allowed) {
    if (!this.cells.has(`${from}>${to}`)) throw new Error(`Cannot set an expectation: unknown pair ${from} -> ${to}`);
    this.cells.set(`${from}>${to}`, allowed);
    return this;
  }

  /** Every pair from a pod matching `fromPeer` to a pod matching `toPeer`. */
  expectPeer(fromPeer, toPeer, allowed) {
    for (const from of PODS) for (const to of PODS) if (peerMatches(fromPeer, from) && peerMatches(toPeer, to)) this.expect(from, to, allowed);
    return this;
  }

  /** The column of `to`: everything reaching it. */
  expectAllIngress(to, allowed) {
    for (const from of PODS) this.expect(from, to, allowed);
    return this;
  }

  /** The row of `from`: everything it reaches. */
  expectAllEgress(from, allowed) {
    for (const to of PODS) this.expect(from, to, allowed);
    return this;
  }

  get(from, to) {
    return this.cells.get(`${from}>${to}`);
  }
}

/** The pairs probed: every ordered pair of distinct pods (72). */
function probedPairs() {
  return PODS.flatMap((from) => PODS.filter((to) => to !== from).map((to) => [from, to]));
}

/** Observed (a Map `from>to` -> boolean) against expected: the pairs that differ. */
function mismatches(expected, observed) {
  return probedPairs().filter(([from, to]) => observed.get(`${from}>${to}`) !== expected.get(from, to)).map(([from, to]) => ({ from, to, expected: expected.get(from, to), observed: observed.get(`${from}>${to}`) }));
}

/** A table with clients as rows and servers as columns, `cell(from, to)` in each; `-` on the diagonal. */
function table(cell) {
  const w = 5;
  const lines = [' '.repeat(w) + PODS.map((p) => p.padEnd(w)).join('')];
  for (const from of PODS) lines.push(from.padEnd(w) + PODS.map((to) => (from === to ? '-' : cell(from, to)).padEnd(w)).join(''));
  return lines.join('\n');
}

/** Upstream's printout: expected and observed (. allowed, X denied) and where they differ (X). */
function describeMismatch(what, expected, observed) {
  const bad = mismatches(expected, observed);
  const mark = (v) => (v ? '.' : 'X');
  return [
    `${what}: ${bad.length} of 72 pairs differ (rows: clients, columns: servers)`,
    'expected:', table((f, t) => mark(expected.get(f, t))),
    'observed:', table((f, t) => mark(observed.get(`${f}>${t}`))),
    'comparison (X: differs):', table((f, t) => (observed.get(`${f}>${t}`) === expected.get(f, t) ? '.' : 'X')),
    ...bad.map((m) => `  ${m.from} -> ${m.to}: expected ${m.expected ? 'allowed' : 'denied'}, observed ${m.observed ? 'allowed' : 'denied'}`),
  ].join('\n');
}

function requirementHolds(req, value) {
  switch (req.operator) {
    case 'In': return value !== undefined && req.values.includes(value);
    case 'NotIn': return value === undefined || !req.values.includes(value);
    case 'Exists': return value !== undefined;
    case 'DoesNotExist': return value === undefined;
    default: throw new Error(`Cannot evaluate selector: unknown operator ${JSON.stringify(req.operator)}`);
  }
}

/** Whether a Kubernetes label selector selects `labels` (to know which pods a policy is waited on for). */
function selectorMatches(selector, labels) {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  return (selector.matchExpressions ?? []).every((req) => requirementHolds(req, labels[req.key]));
}

module.exports = { NAMESPACES, POD_NAMES, PODS, Reachability, probedPairs, mismatches, describeMismatch, selectorMatches };
