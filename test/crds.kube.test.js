// The CustomResourceDefinitions in charts/weft/crds: generated and current, accepted by a real
// kube-apiserver (its structural-schema, OpenAPI and CEL cost checks), and agreeing with Weft's own
// validation in both directions, so `kubectl apply` refuses what Weft would refuse and passes what
// Weft takes. Every verdict below is the API server's own (a create with dryRun=All and strict
// field validation; WeftNode status through its status subresource):
//
// - every valid document (hand-written ones touching every field, examples/, the policies the
//   e2e tests apply, the lab's demo resources) is admitted, and what the server would store
//   (nulls pruned) is accepted by packages/policy and packages/resources;
// - every invalid one is refused by the server and by Weft, except the few differences listed in
//   SCHEMA_ONLY, which must be refused by the server and accepted by Weft (so the list stays exact);
// - seeded mutations of the valid documents must get the same verdict from both.
// Needs hack/kube/build.sh's tools and `npx tsc -b` (imports packages/*/dist). No root.
'use strict';
const assert = require('node:assert/strict');
const { readFileSync, readdirSync } = require('node:fs');
const { join } = require('node:path');
const YAML = require('yaml');
const { crds, render, OUT } = require('../hack/gen-crds.js');
const { startApiServer, waitForKubeBuild } = require('./kube-api.js');

const ROOT = join(__dirname, '..');
const { parsePolicy } = require('../packages/policy/dist/index.js');
const { validateResource } = require('../packages/resources/dist/index.js');
const { parseNodeRecord } = require('../packages/schema/dist/index.js');
const { LabelSet, makeLabel, parseIdentity, inCluster, clusterIdOf, validateClusterId, CLUSTER_LABEL } = require('../packages/identity/dist/index.js');

const CRDS = crds();
const byKind = Object.fromEntries(Object.values(CRDS).map((c) => [c.spec.names.kind, c]));
/** The API server every test here asks (started in `before`). */
let api;

const collection = (doc) => {
  const c = byKind[doc.kind];
  return `/apis/weft.io/v1/${c.spec.scope === 'Namespaced' ? `namespaces/${doc.metadata?.namespace ?? 'default'}/` : ''}${c.spec.names.plural}`;
};
const why = (r) => r.body?.message ?? JSON.stringify(r.body);
/** What of an object the server returns is the document: no server-set metadata. */
const stripped = ({ apiVersion, kind, metadata, spec, status }) => ({ apiVersion, kind, metadata: { name: metadata.name, ...(metadata.namespace ? { namespace: metadata.namespace } : {}) }, ...(spec !== undefined ? { spec } : {}), ...(status !== undefined ? { status } : {}) });
const verdictOf = (r) => {
  if (r.status === 201 || r.status === 200) return { ok: true, stored: stripped(r.body) };
  if (r.status === 422 || r.status === 400) return { ok: false, errors: [why(r)] };
  throw new Error(`the API server answered ${r.status}: ${why(r)}`);
};

/**
 * The API server's verdict on creating `doc`, or on updating `old` to it: {ok, errors, stored}.
 * Nothing is kept. A status goes through the status subresource, as the agent writes it.
 */
async function admit(doc, old) {
  const strict = 'dryRun=All&fieldValidation=Strict';
  const subresources = byKind[doc.kind]?.spec.versions[0].subresources;
  if (!old && !(subresources?.status && doc.status !== undefined)) return verdictOf(await api.call('POST', `${collection(doc)}?${strict}`, doc));
  // An update, or a status: the object must exist first, for real, and goes again after.
  const created = await api.call('POST', `${collection(doc)}?fieldValidation=Strict`, old ?? doc);
  if (created.status !== 201) return verdictOf(created);
  const at = `${collection(doc)}/${created.body.metadata.name}`;
  try {
    const next = { ...doc, metadata: { ...doc.metadata, resourceVersion: created.body.metadata.resourceVersion } };
    return verdictOf(await api.call('PUT', `${at}${old ? '' : '/status'}?${strict}`, next));
  } finally {
    const gone = await api.call('DELETE', at);
    assert.equal(gone.status, 200, why(gone));
  }
}

const WEFT_ERRORS = new Set(['WEFT_ERR_POLICY_INVALID', 'WEFT_ERR_RESOURCE_INVALID', 'WEFT_ERR_IDENTITY_INVALID_LABEL', 'WEFT_ERR_IDENTITY_CLUSTER_ID']);

/** Weft's verdict on a document of one of the four kinds: undefined when it accepts, else the reason. */
function weft(doc) {
  try {
    switch (doc.kind) {
      case 'WeftNetworkPolicy':
      case 'WeftClusterwideNetworkPolicy':
        parsePolicy(doc, 'c1');
        validateResource(doc, 'test', 'c1');
        return undefined;
      case 'WeftNode': {
        // The kvstore node record the CRD mirrors (packages/agent/src/state.ts).
        const s = doc.spec ?? {};
        validateClusterId(s.clusterId);
        const r = parseNodeRecord(Buffer.from(JSON.stringify({ name: doc.metadata.name, cluster: s.cluster, ip: s.nodeIp, podCidr: s.podCidr, routing: s.routing, ...doc.status })), s.cluster);
        return typeof r === 'string' ? r : undefined;
      }
      case 'WeftIdentity': {
        const id = parseIdentity(doc.metadata.name);
        if (id === undefined || !inCluster(id, clusterIdOf(id))) return `identity ${doc.metadata.name} is not an allocated identity`;
        const labels = LabelSet.of(Object.entries(doc.spec.labels).map(([k, v]) => makeLabel(k.slice(0, Math.max(k.indexOf(':'), 0)), k.slice(k.indexOf(':') + 1), v)));
        return labels.get(CLUSTER_LABEL) === undefined ? 'no cluster label' : undefined;
      }
    }
  } catch (err) {
    if (WEFT_ERRORS.has(err.code)) return err.message;
    throw err;
  }
  throw new Error(`no Weft validation for ${doc.kind}`);
}

/** Both verdicts; `agree` when admission and Weft match (an admitted document is judged as stored). */
async function verdicts(doc) {
  const a = await admit(doc);
  const w = weft(a.ok ? a.stored : doc);
  return { schema: a, weft: w, agree: a.ok === (w === undefined) };
}

// ---- the corpus ---------------------------------------------------------------------------------

const wnp = (spec, name = 'p') => ({ apiVersion: 'weft.io/v1', kind: 'WeftNetworkPolicy', metadata: { name, namespace: 'demo' }, spec });
const wcnp = (spec, name = 'p') => ({ apiVersion: 'weft.io/v1', kind: 'WeftClusterwideNetworkPolicy', metadata: { name }, spec });
const KEY_A = Buffer.alloc(32, 7).toString('base64');
const KEY_B = Buffer.alloc(32, 9).toString('base64');
const node = (status, spec = {}) => ({ apiVersion: 'weft.io/v1', kind: 'WeftNode', metadata: { name: 'c1-node1' }, spec: { cluster: 'c1', clusterId: 1, nodeIp: '10.99.0.11', podCidr: '10.101.1.0/24', routing: 'vxlan', ...spec }, ...(status ? { status } : {}) });
const wg = (over = {}) => ({ lanes: [{ publicKey: KEY_A, port: 51871 }, { publicKey: KEY_B, port: 51872 }], epoch: 4, ...over });
const identity = (name, labels) => ({ apiVersion: 'weft.io/v1', kind: 'WeftIdentity', metadata: { name }, spec: { labels } });

const EVERYTHING = {
  endpointSelector: {
    matchLabels: { app: 'web', 'k8s:tier': 'front', 'app.kubernetes.io/name': 'shop', empty: '' },
    matchExpressions: [
      { key: 'env', operator: 'In', values: ['prod', 'stage'] },
      { key: 'k8s:canary', operator: 'DoesNotExist' },
      { key: 'weft.io/cluster', operator: 'NotIn', values: ['c9'] },
      { key: 'team', operator: 'Exists', values: [] },
    ],
  },
  ingress: [
    {
      fromEndpoints: [{ matchLabels: { app: 'client' } }, { matchLabels: { 'io.kubernetes.pod.namespace': 'other', 'weft.io/cluster': 'c2' } }, null],
      toPorts: [{ ports: [{ port: 80, protocol: 'TCP' }, { port: '8080', endPort: 8090 }, { port: '053', endPort: '0054', protocol: 'udp' }, { protocol: 'ICMP' }, { port: 0, protocol: 'icmp' }, { port: '0' }] }],
    },
    { fromEntities: ['world', 'cluster', 'host', 'remote-node', 'all'] },
    { fromCIDR: ['10.0.0.0/8', '0.0.0.0/0', '192.168.1.1/32', '255.255.255.255/32', '10.0.0.0/08', '0.0.0.0/00'] },
    { fromCIDRSet: [{ cidr: '10.0.0.0/8', except: ['10.1.0.0/16', '10.0.0.0/8', '10.255.255.255/32'] }, { cidr: '172.16.0.0/12' }] },
  ],
  ingressDeny: [{ fromEndpoints: [{}], toPorts: [{ ports: [{ port: '22' }] }] }],
  egress: [
    { toEndpoints: [{ matchExpressions: [{ key: 'app', operator: 'In', values: ['db'] }] }] },
    { toEntities: ['world'], toPorts: [{ ports: [{ port: 443, protocol: 'TCP' }, { port: 1, endPort: 65535, protocol: 'SCTP' }, { port: '65535', protocol: 'Any' }] }, {}] },
    { toCIDR: ['8.8.8.8/32'] },
    { toCIDRSet: [{ cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'] }] },
  ],
  egressDeny: [{ toCIDR: ['169.254.169.254/32'], toPorts: [{ ports: [] }] }],
  audit: true,
  description: 'touches every field',
};

/** The Weft policies the e2e tests apply (`file('x.yaml', `...`)`); those in bad*.yaml are meant to be refused. */
function e2ePolicies() {
  const out = [];
  const files = readdirSync(join(ROOT, 'e2e'), { recursive: true }).filter((f) => f.endsWith('.js'));
  for (const f of files) {
    const text = readFileSync(join(ROOT, 'e2e', f), 'utf8');
    for (const m of text.matchAll(/file\('([^']+)', `(apiVersion: [^`]*)`\)/g)) {
      if (m[2].includes('${')) continue;
      for (const d of YAML.parseAllDocuments(m[2])) {
        const doc = d.toJS();
        if (doc?.apiVersion === 'weft.io/v1') out.push({ name: `e2e/${f} ${m[1]}: ${doc.metadata?.name}`, doc, bad: m[1].startsWith('bad') });
      }
    }
  }
  return out;
}

function labPolicies() {
  const { demoResources } = require('../packages/lab/dist/index.js');
  const layout = { name: 'c1', id: 1, nodes: [{ index: 1, name: 'c1-node1' }, { index: 2, name: 'c1-node2' }] };
  return demoResources(layout)
    .filter((r) => r.kind in byKind)
    .map((r) => ({ name: `lab demo: ${r.metadata.name}`, doc: { apiVersion: r.apiVersion, kind: r.kind, metadata: r.metadata, spec: r.spec } }));
}

const VALID = [
  { name: 'every policy field', doc: wnp(EVERYTHING) },
  { name: 'every policy field, clusterwide', doc: wcnp(EVERYTHING) },
  { name: 'smallest policy', doc: wnp({ endpointSelector: {} }) },
  { name: 'default deny ingress', doc: wnp({ endpointSelector: {}, ingress: [] }) },
  // null means something to Weft here (select all; enforce the direction), so the schema keeps it.
  { name: 'null selector and rules', doc: wnp({ endpointSelector: null, ingress: null, egressDeny: null, egress: [{}] }) },
  // Here null means absent to Weft, and the API server prunes it.
  { name: 'nulls that mean absent', doc: wnp({ endpointSelector: { matchLabels: null, matchExpressions: [{ key: 'a', operator: 'Exists', values: null }] }, audit: null, description: null, ingress: [{ fromCIDR: null, toPorts: [{ ports: [{ port: null, protocol: null }] }] }] }) },
  { name: 'dotted policy name', doc: wnp({ endpointSelector: {} }, 'allow.dns-1') },
  ...YAML.parseAllDocuments(readFileSync(join(ROOT, 'examples', 'policy.yaml'), 'utf8')).map((d) => ({ name: 'examples/policy.yaml', doc: d.toJS() })),
  ...e2ePolicies().filter((x) => !x.bad),
  ...labPolicies(),
  { name: 'node without encryption', doc: node(undefined) },
  { name: 'node with WireGuard mid-rotation', doc: node({ wireguard: wg({ rotation: { lane: 1, phase: 'drain' }, acks: { 'c2/n1': 3 } }) }, { routing: 'geneve', clusterId: 255 }) },
  { name: 'node with IPsec', doc: node({ ipsec: { keyIds: [3, 4], sendKeyId: 4 } }, { routing: 'direct', podCidr: '10.128.0.0/9' }) },
  { name: 'identity', doc: identity('65792', { 'k8s:weft.io/cluster': 'c1', 'k8s:app': 'web', 'k8s:io.kubernetes.pod.namespace': 'demo', 'k8s:weft.io.namespace.labels.purpose': 'demo' }) },
  { name: 'identity, last of cluster 255', doc: identity('16777215', { 'k8s:weft.io/cluster': 'c255', 'reserved:host': '', 'cilium:x': '' }) },
];

// [name, document, field]: refused by the schema and by Weft.
const base = () => JSON.parse(JSON.stringify(wnp(EVERYTHING)));
const tweak = (fn, doc = base()) => (fn(doc), doc);
const port = (p) => tweak((d) => (d.spec.ingress[0].toPorts[0].ports = [p]));
const INVALID = [
  ...e2ePolicies().filter((x) => x.bad).map((x) => [x.name, x.doc]),
  ['no spec', tweak((d) => delete d.spec)],
  ['spec null', tweak((d) => (d.spec = null))],
  ['no endpointSelector', tweak((d) => delete d.spec.endpointSelector)],
  ['unknown spec field', tweak((d) => (d.spec.ingres = []))],
  ['rule field of the other direction', tweak((d) => (d.spec.ingress[0].toEndpoints = [{}]))],
  ['unknown port field', port({ port: 80, name: 'http' })],
  ['unknown selector field', tweak((d) => (d.spec.endpointSelector.matchFields = {}))],
  ['invalid name', tweak((d) => (d.metadata.name = 'Web_Policy'))],
  ['selector key', tweak((d) => (d.spec.endpointSelector.matchLabels['-app'] = 'x'))],
  ['selector key with two sources', tweak((d) => (d.spec.endpointSelector.matchLabels['k8s:k8s:app'] = 'x'))],
  ['selector value', tweak((d) => (d.spec.endpointSelector.matchLabels.app = 'a b'))],
  ['selector value too long', tweak((d) => (d.spec.endpointSelector.matchLabels.app = 'a'.repeat(64)))],
  ['selector value not a string', tweak((d) => (d.spec.endpointSelector.matchLabels.app = 5))],
  ['operator', tweak((d) => (d.spec.endpointSelector.matchExpressions[0].operator = 'in'))],
  ['expression without key', tweak((d) => delete d.spec.endpointSelector.matchExpressions[0].key)],
  ['expression key', tweak((d) => (d.spec.endpointSelector.matchExpressions[0].key = 'a b'))],
  ['In without values', tweak((d) => (d.spec.endpointSelector.matchExpressions[0].values = []))],
  ['Exists with values', tweak((d) => (d.spec.endpointSelector.matchExpressions[1].values = ['x']))],
  ['peer selector key', tweak((d) => (d.spec.ingress[0].fromEndpoints[0].matchLabels = { 'a/b/c': 'x' }))],
  ['peer not an object', tweak((d) => (d.spec.ingress[0].fromEndpoints = ['app=web']))],
  ['entity', tweak((d) => (d.spec.ingress[1].fromEntities = ['internet']))],
  ['CIDR with host bits', tweak((d) => (d.spec.ingress[2].fromCIDR = ['10.0.0.1/8']))],
  ['CIDR prefix 33', tweak((d) => (d.spec.ingress[2].fromCIDR = ['10.0.0.0/33']))],
  ['CIDR prefix of three digits', tweak((d) => (d.spec.ingress[2].fromCIDR = ['10.0.0.0/008']))],
  ['CIDR leading zero', tweak((d) => (d.spec.ingress[2].fromCIDR = ['010.0.0.0/8']))],
  ['CIDR without prefix', tweak((d) => (d.spec.ingress[2].fromCIDR = ['10.0.0.0']))],
  ['IPv6 CIDR', tweak((d) => (d.spec.egress[2].toCIDR = ['fd00::/8']))],
  ['CIDR set without cidr', tweak((d) => delete d.spec.ingress[3].fromCIDRSet[0].cidr)],
  ['except outside cidr', tweak((d) => (d.spec.ingress[3].fromCIDRSet[0].except = ['11.0.0.0/16']))],
  ['except wider than cidr', tweak((d) => (d.spec.ingress[3].fromCIDRSet[0].except = ['10.0.0.0/7']))],
  ['except with host bits', tweak((d) => (d.spec.ingress[3].fromCIDRSet[0].except = ['10.1.0.1/16']))],
  ['cidr set with host bits', tweak((d) => (d.spec.egress[3].toCIDRSet[0].cidr = '0.0.0.1/0'))],
  ['named port', port({ port: 'http' })],
  ['port 65536', port({ port: 65536 })],
  ['port -1', port({ port: -1 })],
  ['port "65536"', port({ port: '65536' })],
  ['port "00"', port({ port: '00' })],
  ['port ""', port({ port: '' })],
  ['port 1.5', port({ port: 1.5 })],
  ['port true', port({ port: true })],
  ['endPort without port', port({ endPort: 90 })],
  ['endPort with port 0', port({ port: '0', endPort: 90 })],
  ['endPort below port', port({ port: 90, endPort: '80' })],
  ['endPort 0', port({ port: 1, endPort: 0 })],
  ['endPort 65536', port({ port: 1, endPort: '65536' })],
  ['protocol', port({ port: 80, protocol: 'HTTP' })],
  ['ICMP with a port', port({ port: 8, protocol: 'Icmp' })],
  ['toPorts field', tweak((d) => (d.spec.ingress[0].toPorts = [{ port: 80 }]))],
  ['audit not a boolean', tweak((d) => (d.spec.audit = 'yes'))],
  ['rules not a list', tweak((d) => (d.spec.ingress = {}))],
  ['null rule', tweak((d) => (d.spec.egress = [null]))],
  ['clusterwide, unknown field', tweak((d) => (d.spec.fromEndpoints = []), wcnp({ endpointSelector: {} }))],
  ['node: two lanes with one key', node({ wireguard: wg({ lanes: [{ publicKey: KEY_A, port: 1 }, { publicKey: KEY_A, port: 2 }] }) })],
  ['node: one lane', node({ wireguard: wg({ lanes: [{ publicKey: KEY_A, port: 1 }] }) })],
  ['node: key of 31 bytes', node({ wireguard: wg({ lanes: [{ publicKey: Buffer.alloc(31).toString('base64'), port: 1 }, { publicKey: KEY_B, port: 2 }] }) })],
  ['node: lane port 0', node({ wireguard: wg({ lanes: [{ publicKey: KEY_A, port: 0 }, { publicKey: KEY_B, port: 2 }] }) })],
  ['node: negative epoch', node({ wireguard: wg({ epoch: -1 }) })],
  ['node: rotation phase', node({ wireguard: wg({ rotation: { lane: 0, phase: 'swap' } }) })],
  ['node: rotation lane 2', node({ wireguard: wg({ rotation: { lane: 2, phase: 'drain' } }) })],
  ['node: negative ack', node({ wireguard: wg({ acks: { 'c2/n1': -1 } }) })],
  ['node: IPsec key id 16', node({ ipsec: { keyIds: [16], sendKeyId: 16 } })],
  ['node: IPsec without key ids', node({ ipsec: { keyIds: [], sendKeyId: 1 } })],
  ['node: IPsec sends under a key it does not list', node({ ipsec: { keyIds: [1], sendKeyId: 2 } })],
  ['node: IP', node(undefined, { nodeIp: '10.99.0.256' })],
  ['node: pod CIDR with host bits', node(undefined, { podCidr: '10.101.1.1/24' })],
  ['node: routing', node(undefined, { routing: 'ipip' })],
  ['node: cluster id 0', node(undefined, { clusterId: 0 })],
  ['identity: reserved range', identity('255', { 'k8s:weft.io/cluster': 'c1' })],
  ['identity: local id below 256', identity('65791', { 'k8s:weft.io/cluster': 'c1' })],
  ['identity: beyond 24 bits', identity('16777216', { 'k8s:weft.io/cluster': 'c1' })],
  ['identity: leading zero', identity('065792', { 'k8s:weft.io/cluster': 'c1' })],
  ['identity: no cluster label', identity('65792', { 'k8s:app': 'web' })],
  ['identity: label without source', identity('65792', { 'k8s:weft.io/cluster': 'c1', app: 'web' })],
  ['identity: source', identity('65792', { 'k8s:weft.io/cluster': 'c1', 'K8S:app': 'web' })],
  ['identity: key prefix', identity('65792', { 'k8s:weft.io/cluster': 'c1', 'k8s:a..b/app': 'web' })],
  ['identity: value', identity('65792', { 'k8s:weft.io/cluster': 'c1', 'k8s:app': '-web' })],
  ['identity: unknown reserved', identity('65792', { 'k8s:weft.io/cluster': 'c1', 'reserved:everything': '' })],
  ['identity: reserved with a value', identity('65792', { 'k8s:weft.io/cluster': 'c1', 'reserved:host': 'yes' })],
];

// Refused by the schema only, on purpose. Bounds: the API server estimates CEL cost from them (Weft
// has none; these are far beyond real policies). description: Weft does not read it. Protocols:
// parseProtocol upper-cases with toUpperCase, which also turns 'ſ' into 'S' and 'ı' into 'I'.
const many = (n, item) => Array.from({ length: n }, () => item);
const SCHEMA_ONLY = [
  ['description not a string', tweak((d) => (d.spec.description = 5))],
  ['protocol with a non-ASCII letter', port({ port: 80, protocol: '\u017fctp' })],
  ['33 ingress rules', tweak((d) => (d.spec.ingress = many(33, {})))],
  ['257 CIDRs in a rule', tweak((d) => (d.spec.egress = [{ toCIDR: many(257, '10.0.0.0/8') }]))],
  ['65 peers in a rule', tweak((d) => (d.spec.egress = [{ toEndpoints: many(65, {}) }]))],
  ['65 labels in a selector', tweak((d) => (d.spec.endpointSelector = { matchLabels: Object.fromEntries(many(65, 0).map((_, i) => [`k${i}`, 'v'])) }))],
  ['33 excepts', tweak((d) => (d.spec.egress = [{ toCIDRSet: [{ cidr: '10.0.0.0/8', except: many(33, '10.0.0.0/16') }] }]))],
];

// ---- tests --------------------------------------------------------------------------------------

describe('CRDs (charts/weft/crds) on a real API server', function () {
  this.timeout(180_000);
  waitForKubeBuild();

  before(async () => {
    api = await startApiServer('crds');
    const namespaces = new Set([...VALID.map((v) => v.doc), ...INVALID.map(([, d]) => d)].map((d) => d?.metadata?.namespace).filter(Boolean));
    for (const ns of namespaces) assert.equal((await api.call('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } })).status, 201);
    const r = api.kubectl(['apply', '--server-side', '-f', OUT]);
    assert.equal(r.status, 0, `the API server refuses the CRDs:\n${r.stderr}`);
    const w = api.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
    assert.equal(w.status, 0, w.stderr);
  });
  after(() => api?.stop());

  it('are what hack/gen-crds.js generates', () => {
    for (const [file, crd] of Object.entries(CRDS)) assert.equal(readFileSync(join(OUT, file), 'utf8'), render(crd), `${file} is stale: run node hack/gen-crds.js`);
    assert.deepEqual(readdirSync(OUT).sort(), Object.keys(CRDS).sort());
  });

  it('define weft.io/v1 with the names the Kubernetes source uses', () => {
    const want = { WeftNetworkPolicy: ['weftnetworkpolicies', 'Namespaced'], WeftClusterwideNetworkPolicy: ['weftclusterwidenetworkpolicies', 'Cluster'], WeftNode: ['weftnodes', 'Cluster'], WeftIdentity: ['weftidentities', 'Cluster'] };
    for (const [kind, [plural, scope]] of Object.entries(want)) {
      const c = byKind[kind];
      assert.equal(c.spec.names.plural, plural);
      assert.equal(c.spec.scope, scope);
      assert.deepEqual(c.spec.versions.map((v) => [v.name, v.served, v.storage]), [['v1', true, true]]);
      assert.equal(c.spec.versions[0].subresources?.status !== undefined, kind === 'WeftNode');
    }
    // The same documents, read back as Kubernetes would from the files.
    for (const file of Object.keys(CRDS)) assert.deepEqual(YAML.parse(readFileSync(join(OUT, file), 'utf8')), CRDS[file]);
  });

  it('are accepted and established, structural, with no CEL rule over the cost budget', async () => {
    for (const crd of Object.values(CRDS)) {
      const r = await api.call('GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`);
      const conditions = Object.fromEntries(r.body.status.conditions.map((c) => [c.type, c.status]));
      assert.deepEqual(conditions, { NamesAccepted: 'True', Established: 'True' }, `${crd.metadata.name}: ${JSON.stringify(r.body.status.conditions)}`);
    }
  });

  it('would be refused by the API server if they broke its rules (the check can fail)', async () => {
    const broken = async (fn) => {
      const c = JSON.parse(JSON.stringify(byKind.WeftNetworkPolicy));
      fn(c.spec.versions[0].schema.openAPIV3Schema);
      const at = `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${c.metadata.name}`;
      c.metadata.resourceVersion = (await api.call('GET', at)).body.metadata.resourceVersion;
      const r = await api.call('PUT', `${at}?dryRun=All`, c);
      assert.equal(r.status, 422, `accepted: ${why(r)}`);
      return why(r);
    };
    assert.match(await broken((s) => delete s.properties.spec.properties.audit.type), /properties\[audit\]\.type: Required value: must not be empty for specified object fields/);
    assert.match(await broken((s) => (s.properties.spec.additionalProperties = { type: 'string' })), /additionalProperties and properties are mutual exclusive/);
    assert.match(await broken((s) => (s.properties.metadata.properties.labels = { type: 'object' })), /must not specify anything other than name and generateName/);
    assert.match(await broken((s) => (s.properties.spec.properties.audit.pattern = 'a(?=b)')), /must be a valid regular expression/);
    assert.match(await broken((s) => (s.properties.spec['x-kubernetes-validations'] = [{ rule: 'self.(' }])), /compilation failed/);
    assert.match(await broken((s) => delete s.properties.spec.properties.ingress.maxItems), /estimated rule cost exceeds budget/);
  });

  it('admit every valid document, and Weft accepts what would be stored', async () => {
    const e2e = e2ePolicies();
    assert.ok(e2e.filter((x) => !x.bad).length >= 7 && e2e.some((x) => x.bad), `found the policies of the e2e tests: ${e2e.map((x) => x.name).join(', ')}`);
    for (const { name, doc } of VALID) {
      const v = await verdicts(doc);
      assert.ok(v.schema.ok, `${name}: the API server refuses it: ${v.schema.errors?.join('; ')}`);
      assert.equal(v.weft, undefined, `${name}: Weft refuses what the API server stores`);
    }
  });

  it('exercise every field of the schemas with the valid documents', async () => {
    const paths = (s, at, out) => {
      for (const [k, p] of Object.entries(s.properties ?? {})) out.add(`${at}.${k}`) && paths(p, `${at}.${k}`, out);
      if (s.items) paths(s.items, `${at}[]`, out);
      return out;
    };
    const used = (v, at, out) => {
      if (Array.isArray(v)) v.forEach((x) => used(x, `${at}[]`, out));
      else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) out.add(`${at}.${k}`) && used(x, `${at}.${k}`, out);
      return out;
    };
    // One name per shared schema: the four rule lists, the peers of either direction, every selector.
    const norm = (p) =>
      p
        .replace(/\.(ingress|egress)(Deny)?\[\]/, '.rules[]')
        .replace(/\.(from|to)(Endpoints|Entities|CIDR|CIDRSet)/, '.peer$2')
        .replace(/^.*?(\.endpointSelector|\.peerEndpoints\[\])/, 'selector');
    for (const [kind, crd] of Object.entries(byKind)) {
      const seen = new Set();
      for (const { doc } of VALID.filter((x) => x.doc.kind === kind)) for (const p of used((await admit(doc)).stored, '', new Set())) seen.add(norm(p));
      const all = new Set([...paths(crd.spec.versions[0].schema.openAPIV3Schema, '', new Set())].map(norm));
      const missing = [...all].filter((p) => !seen.has(p) && !/^\.(apiVersion|kind|metadata)/.test(p));
      assert.deepEqual(missing, [], `${kind}: fields no valid document uses`);
    }
  });

  it('refuse every invalid document, and so does Weft', async () => {
    for (const [name, doc] of INVALID) {
      const a = await admit(doc);
      assert.ok(!a.ok, `${name}: the API server admits it`);
      assert.notEqual(weft(doc), undefined, `${name}: Weft accepts what the API server refuses (${a.errors.join('; ')})`);
    }
  });

  it('differ from Weft exactly where listed', async () => {
    for (const [name, doc] of SCHEMA_ONLY) {
      assert.ok(!(await admit(doc)).ok, `${name}: the API server admits it`);
      assert.equal(weft(doc), undefined, `${name}: Weft refuses it too, so it belongs in INVALID`);
    }
  });

  it('keep spec of an identity immutable', async () => {
    const old = identity('65792', { 'k8s:weft.io/cluster': 'c1', 'k8s:app': 'web' });
    assert.ok((await admit(old, old)).ok);
    const changed = identity('65792', { 'k8s:weft.io/cluster': 'c1', 'k8s:app': 'db' });
    assert.match((await admit(changed, old)).errors.join(), /spec is immutable/);
  });

  it('agree with Weft on seeded mutations of the valid documents', async () => {
    const report = await fuzz(MUTATIONS, 0x5eed);
    assert.ok(report.accepted > MUTATIONS / 20 && report.refused > MUTATIONS / 4, `both verdicts are exercised: ${JSON.stringify({ ...report, disagreements: report.disagreements.length })}`);
    assert.deepEqual(report.disagreements.slice(0, 5), [], `${report.disagreements.length} disagreements`);
  });

  it('has a cross-check that catches drift', async () => {
    // A schema that forgot the port bound admits what Weft refuses, and the mutation check says so.
    const name = byKind.WeftNetworkPolicy.metadata.name;
    const at = `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`;
    const replace = async (crd) => {
      const current = await api.call('GET', at);
      const r = await api.call('PUT', at, { ...crd, metadata: { ...crd.metadata, resourceVersion: current.body.metadata.resourceVersion } });
      assert.equal(r.status, 200, why(r));
    };
    /** Until the server validates with the new schema (a CRD update takes effect asynchronously). */
    const until = async (admitted) => {
      const deadline = Date.now() + 30_000;
      while ((await admit(port({ port: 70000 }))).ok !== admitted) {
        assert.ok(Date.now() < deadline, 'the API server did not take the changed CRD');
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const loose = JSON.parse(JSON.stringify(byKind.WeftNetworkPolicy));
    const unbound = (s) => {
      if (s && typeof s === 'object') for (const [k, x] of Object.entries(s)) k === 'port' ? delete x.maximum : unbound(x);
    };
    unbound(loose.spec.versions[0].schema.openAPIV3Schema);
    await replace(loose);
    try {
      await until(true);
      assert.equal((await verdicts(port({ port: 70000 }))).agree, false);
      const drift = (await fuzz(MUTATIONS, 0x5eed)).disagreements;
      assert.ok(drift.some((d) => /\.port = "?65536"?: schema admits/.test(d)), drift.join('\n'));
    } finally {
      await replace(byKind.WeftNetworkPolicy);
      await until(false);
    }
  });
});

// ---- mutations ----------------------------------------------------------------------------------

const POOL = [null, true, 0, 1, -1, 80, 65536, 1.5, '', '0', '80', 'http', 'tcp', 'In', 'world', '10.0.0.0/8', '10.0.0.1/8', 'k8s:app', 'a b',
  {}, [], [{}], [null], ['10.0.0.0/8'], { app: 'web' }, { 'bad key': 'x' }, [{ key: 'app', operator: 'In', values: ['a'] }], [{ key: 'app', operator: 'Exists' }],
  [{ port: 80 }], [{ port: '80', endPort: 79 }], [{ ports: [{ port: 53, protocol: 'UDP' }] }], ['world'], [{ cidr: '10.0.0.0/8', except: ['10.2.0.0/16'] }]];
const CIDRS = ['10.0.0.0/8', '10.0.0.1/8', '10.1.0.0/16', '10.2.3.0/24', '0.0.0.0/0', '0.0.0.1/0', '10.0.0.0/33', '10.0.0.0/08', '010.0.0.0/8', '10.0.0.0', '300.0.0.0/8', '11.0.0.0/8', '255.255.255.255/32', '', 5, null];
const PORTS = [0, 1, 80, 65535, 65536, -1, 1.5, '0', '00', '080', '65535', '65536', 'http', '', null, true];
// Values by the field (or list) they go into, so the mutations probe each field's edges.
const FIELDS = {
  port: PORTS,
  endPort: PORTS,
  protocol: ['TCP', 'tcp', 'Udp', 'SCTP', 'ICMP', 'icmp', 'ANY', 'any', 'HTTP', 'ICMPv6', '', 5, null],
  cidr: CIDRS,
  fromCIDR: CIDRS,
  toCIDR: CIDRS,
  except: CIDRS,
  operator: ['In', 'NotIn', 'Exists', 'DoesNotExist', 'in', '', null],
  key: ['app', 'k8s:app', 'k8s:k8s:app', 'a/b', 'a/b/c', 'a b', '-x', 'io.kubernetes.pod.namespace', '', null, 5],
  values: [['a'], [], null, ['a', 'b'], [5], 'a', ['a b']],
  fromEntities: ['world', 'cluster', 'host', 'remote-node', 'all', 'internet', 'World', '', null],
  toEntities: ['world', 'cluster', 'host', 'remote-node', 'all', 'internet', 'World', '', null],
  matchLabels: [{}, null, [], { app: 'x' }, { 'k8s:app': 'x' }, { '-a': 'x' }, { app: 'a b' }, { app: 5 }, { app: '' }, { 'a/b/c': 'x' }],
  matchExpressions: [[], null, [{ key: 'a', operator: 'In' }], [{ key: 'a', operator: 'Exists', values: ['x'] }], [{ key: 'a', operator: 'DoesNotExist' }], [null]],
  audit: [true, false, null, 'true', 1],
  endpointSelector: [{}, null, [], 'app=x', { matchLabels: null }, { matchLabels: { app: 'x' } }],
  fromEndpoints: [{}, null, [], 'app=x', { matchLabels: { app: 'x' } }, { matchExpressions: [{ key: 'a', operator: 'Exists' }] }],
  toEndpoints: [{}, null, [], 'app=x', { matchLabels: { app: 'x' } }],
  labelKeys: ['app', 'k8s:app', 'k8s:k8s:app', '-app', 'a/b', 'example.com/app', 'x'.repeat(64), 'a_b.c-d', 'a..b/c', ''],
  labelValues: ['web', '', 'a b', '-x', 'x'.repeat(63), 'x'.repeat(64), 5, null],
};
const EXTRA_KEYS = ['bogus', 'port', 'endPort', 'protocol', 'except', 'matchLabels', 'values', 'fromEndpoints', 'toPorts'];

function rng(seed) {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return s % n;
  };
}

/** How many seeded mutations each run asks the API server about (a few milliseconds each, 8 at a time). */
const MUTATIONS = 4000;

/** Mutations of the valid policies; every one must get the same verdict from the API server and from Weft. */
async function fuzz(count, seed) {
  const rand = rng(seed);
  const pick = (list) => list[rand(list.length)];
  const seeds = VALID.filter((v) => v.doc.kind.endsWith('NetworkPolicy'));
  const report = { accepted: 0, refused: 0, disagreements: [] };
  const mutations = [];
  for (let i = 0; i < count; i++) {
    const doc = JSON.parse(JSON.stringify(pick(seeds).doc));
    // A container somewhere under spec, with the field it sits in (description is Weft's to ignore: SCHEMA_ONLY).
    const spots = [];
    const collect = (v, path, field) => {
      if (v === null || typeof v !== 'object') return;
      spots.push({ v, path, field });
      for (const [k, x] of Object.entries(v)) if (k !== 'description') collect(x, `${path}.${k}`, Array.isArray(v) ? field : field === 'matchLabels' ? 'labelValues' : k);
    };
    collect(doc.spec, 'spec', 'spec');
    const { v, path, field } = pick(spots);
    const keys = Object.keys(v).filter((k) => k !== 'description');
    const value = (f) => JSON.parse(JSON.stringify(FIELDS[f] && rand(4) > 0 ? pick(FIELDS[f]) : pick(POOL)));
    let what;
    if (Array.isArray(v) || rand(4) > 0 || keys.length === 0) {
      let k;
      if (Array.isArray(v)) k = v.length > 0 && rand(5) > 0 ? rand(v.length) : v.length;
      else if (keys.length > 0 && rand(3) > 0) k = pick(keys);
      else k = field === 'matchLabels' ? pick(FIELDS.labelKeys) : pick(EXTRA_KEYS);
      v[k] = value(Array.isArray(v) ? field : field === 'matchLabels' ? 'labelValues' : k);
      what = `${path}.${k} = ${JSON.stringify(v[k])}`;
    } else {
      const k = pick(keys);
      delete v[k];
      what = `delete ${path}.${k}`;
    }
    mutations.push({ doc, what });
  }
  let next = 0;
  const worker = async () => {
    while (next < mutations.length) {
      const { doc, what } = mutations[next++];
      const r = await verdicts(doc);
      if (r.schema.ok) report.accepted++;
      else report.refused++;
      if (!r.agree) report.disagreements.push(`${what}: schema ${r.schema.ok ? 'admits' : `refuses (${r.schema.errors.join('; ')})`}, Weft ${r.weft === undefined ? 'accepts' : `refuses (${r.weft})`}`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return report;
}
