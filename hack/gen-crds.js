#!/usr/bin/env node
// Generates charts/weft/crds/*.yaml, the CustomResourceDefinitions of weft.io/v1: `node hack/gen-crds.js`
// writes them, `--check` exits 1 when the committed files differ (test/crds.kube.test.js checks the same).
//
// The policy schemas mirror what packages/policy/src/parse.ts accepts, field by field, so that the
// API server rejects what Weft would reject; test/crds.kube.test.js proves both directions on a corpus
// and on mutations of it. Where they differ on purpose it is listed there (SCHEMA_ONLY): list bounds
// (the API server estimates CEL cost from them) and `description`, which Weft does not look at.
// CEL is used only where a schema cannot say it, and only with functions Kubernetes has had since
// validation rules exist (standard CEL, matches, the strings extension's replace/split/indexOf).
'use strict';
const { readFileSync, writeFileSync, mkdirSync } = require('node:fs');
const { join } = require('node:path');
const YAML = require('yaml');

const OUT = join(__dirname, '..', 'charts', 'weft', 'crds');

// packages/policy/src/parse.ts: LABEL_KEY_RE with the optional Cilium-style `k8s:` source, LABEL_VALUE_RE, NAME_RE.
const SELECTOR_KEY = '^(k8s:)?([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$';
const LABEL_VALUE = '^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$';
const POLICY_NAME = '^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$';
// packages/policy/src/cidr.ts: dotted decimal without leading zeros, and a prefix of one or two digits up to 32.
const OCTET = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const IPV4 = `^${OCTET}([.]${OCTET}){3}$`;
const CIDR = `^${OCTET}([.]${OCTET}){3}/([0-2]?[0-9]|3[0-2])$`;
// parsePort: a number, or a string of digits (leading zeros allowed) naming 1-65535; port 0 or "0" means every port.
const PORT_DIGITS = '0*([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])';
// parseProtocol upper-cases what it is given.
const PROTOCOL = '^([Tt][Cc][Pp]|[Uu][Dd][Pp]|[Ss][Cc][Tt][Pp]|[Ii][Cc][Mm][Pp]|[Aa][Nn][Yy])$';
const ENTITIES = ['world', 'cluster', 'host', 'remote-node', 'all'];

// CEL over an a.b.c.d/n string `x` already matched by CIDR: its five numbers are
// x.replace('/', '.').split('.'), written out at each use rather than bound by a macro, so the API
// server's cost estimate stays small and exact (a split of a split, or a list-literal binding,
// has no size it can bound in every version). BLOCK[n] is 2^(32-n), the size of a /n.
const BLOCK = `[${Array.from({ length: 33 }, (_, n) => 2 ** (32 - n)).join(', ')}]`;
const num = (x, i) => `int(${x}.replace('/', '.').split('.')[${i}])`;
const addr = (x) => `((${num(x, 0)} * 256 + ${num(x, 1)}) * 256 + ${num(x, 2)}) * 256 + ${num(x, 3)}`;
const HOST_BITS_ZERO = {
  rule: `(${addr('self')}) % ${BLOCK}[${num('self', 4)}] == 0`,
  message: 'must be a network address: the bits after the prefix length are zero (10.1.0.0/16, not 10.1.2.3/16)',
};
const EXCEPT_WITHIN = {
  rule: `!has(self.except) || self.except.all(e, ${num('e', 4)} >= ${num('self.cidr', 4)} && (${addr('e')}) - (${addr('e')}) % ${BLOCK}[${num('self.cidr', 4)}] == ${addr('self.cidr')})`,
  message: 'each except must lie within cidr',
};

// Bounds on lists and maps that carry CEL rules: the API server multiplies a rule's cost by how many
// times it can run and refuses CRDs whose estimate is too high; well beyond what a policy needs.
const MAX = { rules: 32, peers: 64, labels: 64, expressions: 32, cidrs: 256, cidrSets: 16, except: 32, toPorts: 32, ports: 32 };

const cidrString = (description) => ({ type: 'string', description, maxLength: 18, pattern: CIDR, 'x-kubernetes-validations': [HOST_BITS_ZERO] });

const selector = (description) => ({
  type: 'object',
  description,
  // null selects like {} in Weft, so the API server must keep it rather than prune it.
  nullable: true,
  properties: {
    matchLabels: {
      type: 'object',
      description: 'Labels the endpoint must carry. Keys may have the k8s: source prefix (k8s:app is app).',
      maxProperties: MAX.labels,
      additionalProperties: { type: 'string', maxLength: 63, pattern: LABEL_VALUE },
      'x-kubernetes-validations': [{ rule: `self.all(k, k.matches('${SELECTOR_KEY}'))`, message: 'keys must be label keys: [k8s:][prefix/]name' }],
    },
    matchExpressions: {
      type: 'array',
      maxItems: MAX.expressions,
      items: {
        type: 'object',
        required: ['key', 'operator'],
        properties: {
          key: { type: 'string', pattern: SELECTOR_KEY },
          operator: { type: 'string', enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'] },
          values: { type: 'array', items: { type: 'string' } },
        },
        'x-kubernetes-validations': [
          {
            rule: "self.operator == 'In' || self.operator == 'NotIn' ? has(self.values) && size(self.values) > 0 : !has(self.values) || size(self.values) == 0",
            message: 'values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist',
          },
        ],
      },
    },
  },
});

const intOrString = (description, min, stringPattern) => ({
  description,
  'x-kubernetes-int-or-string': true,
  anyOf: [{ type: 'integer' }, { type: 'string' }],
  minimum: min,
  maximum: 65535,
  pattern: stringPattern,
});

const portRule = {
  type: 'object',
  properties: {
    port: intOrString('A port number, or its digits as a string; 0 or absent: every port of the protocol. Named ports are not supported.', 0, `^(0|${PORT_DIGITS})$`),
    endPort: intOrString('With port: the last port of an inclusive range.', 1, `^${PORT_DIGITS}$`),
    protocol: { type: 'string', description: 'TCP, UDP, SCTP, ICMP or ANY (any case); default ANY.', maxLength: 4, pattern: PROTOCOL },
  },
  'x-kubernetes-validations': [
    { rule: '!has(self.endPort) || has(self.port) && int(self.port) != 0', message: 'endPort needs a port' },
    { rule: '!has(self.endPort) || !has(self.port) || int(self.port) == 0 || int(self.endPort) >= int(self.port)', message: 'endPort must not be below port' },
    { rule: "!has(self.protocol) || !self.protocol.matches('^[Ii][Cc][Mm][Pp]$') || !has(self.port) || int(self.port) == 0", message: 'ICMP has no ports' },
  ],
};

function rule(direction) {
  const [to, peer] = direction === 'ingress' ? ['from', 'allowed from'] : ['to', 'allowed to'];
  return {
    type: 'object',
    description: `One rule: traffic ${peer} any of its peers (none listed: every peer) on any of its ports (none listed: every port).`,
    properties: {
      [`${to}Endpoints`]: {
        type: 'array',
        description: "Endpoints by label; in a WeftNetworkPolicy within the policy's namespace unless the selector names io.kubernetes.pod.namespace.",
        maxItems: MAX.peers,
        items: selector('A label selector; {} or null selects every endpoint.'),
      },
      [`${to}Entities`]: { type: 'array', items: { type: 'string', enum: ENTITIES } },
      [`${to}CIDR`]: { type: 'array', maxItems: MAX.cidrs, items: cidrString('An IPv4 prefix, a.b.c.d/n.') },
      [`${to}CIDRSet`]: {
        type: 'array',
        maxItems: MAX.cidrSets,
        items: {
          type: 'object',
          required: ['cidr'],
          properties: {
            cidr: cidrString('An IPv4 prefix, a.b.c.d/n.'),
            except: { type: 'array', maxItems: MAX.except, items: cidrString('A prefix within cidr to leave out.') },
          },
          'x-kubernetes-validations': [EXCEPT_WITHIN],
        },
      },
      toPorts: {
        type: 'array',
        maxItems: MAX.toPorts,
        items: { type: 'object', properties: { ports: { type: 'array', maxItems: MAX.ports, items: portRule } } },
      },
    },
  };
}

const rules = (direction, what) => ({
  type: 'array',
  description: `${what} Present (even empty or null): the selected endpoints deny ${direction} by default.`,
  // null enforces the direction in Weft (like []), so the API server must keep it rather than prune it.
  nullable: true,
  maxItems: MAX.rules,
  items: rule(direction),
});

const policySpec = (clusterwide) => ({
  type: 'object',
  required: ['endpointSelector'],
  properties: {
    endpointSelector: selector(clusterwide ? 'The endpoints of every namespace the policy applies to; {} selects all.' : "The endpoints of the policy's namespace it applies to; {} selects all."),
    ingress: rules('ingress', 'Rules allowing traffic to the selected endpoints.'),
    ingressDeny: rules('ingress', 'Rules denying traffic to the selected endpoints; deny wins over allow.'),
    egress: rules('egress', 'Rules allowing traffic from the selected endpoints.'),
    egressDeny: rules('egress', 'Rules denying traffic from the selected endpoints; deny wins over allow.'),
    audit: { type: 'boolean', description: 'Report drops as AUDIT and let the traffic through.' },
    description: { type: 'string' },
  },
});

const root = (metadataName, spec, extra = {}) => ({
  type: 'object',
  required: ['spec'],
  properties: {
    apiVersion: { type: 'string' },
    kind: { type: 'string' },
    metadata: { type: 'object', properties: { name: { type: 'string', ...metadataName } } },
    spec,
    ...extra,
  },
});

function crd({ kind, plural, shortNames, scope, description, schema, columns, status }) {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.weft.io`, labels: { 'app.kubernetes.io/part-of': 'weft' } },
    spec: {
      group: 'weft.io',
      names: { kind, listKind: `${kind}List`, plural, singular: kind.toLowerCase(), shortNames, categories: ['weft'] },
      scope,
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          ...(status ? { subresources: { status: {} } } : {}),
          additionalPrinterColumns: [...columns, { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }],
          schema: { openAPIV3Schema: { description, ...schema } },
        },
      ],
    },
  };
}

const policyColumns = [
  { name: 'Audit', type: 'boolean', jsonPath: '.spec.audit' },
  { name: 'Description', type: 'string', jsonPath: '.spec.description', priority: 1 },
];

// packages/agent/src/state.ts (NodeRecord) and config.ts.
const WG_KEY = '^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$';
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const weftNodeSchema = root(
  { maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$' },
  {
    type: 'object',
    description: "The node's place in the cluster, as its agent was configured.",
    required: ['cluster', 'clusterId', 'nodeIp', 'podCidr', 'routing'],
    properties: {
      cluster: { type: 'string', description: 'Name of the cluster.', pattern: '^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$' },
      clusterId: { type: 'integer', description: 'Id of the cluster, 1-255; the high byte of its identities.', minimum: 1, maximum: 255 },
      nodeIp: { type: 'string', description: "The node's underlay IPv4 address.", maxLength: 15, pattern: IPV4 },
      podCidr: cidrString("The node's pod CIDR."),
      routing: { type: 'string', enum: ['vxlan', 'geneve', 'direct'] },
    },
  },
  {
    status: {
      type: 'object',
      description: 'What peers need to encrypt to the node; one of wireguard or ipsec, or neither when encryption is off.',
      properties: {
        wireguard: {
          type: 'object',
          required: ['lanes', 'epoch'],
          properties: {
            lanes: {
              type: 'array',
              description: 'The two WireGuard devices; traffic uses one while the key of the other rotates.',
              minItems: 2,
              maxItems: 2,
              items: {
                type: 'object',
                required: ['publicKey', 'port'],
                properties: {
                  publicKey: { type: 'string', description: 'Base64 Curve25519 public key.', maxLength: 44, pattern: WG_KEY },
                  port: { type: 'integer', minimum: 1, maximum: 65535 },
                },
              },
            },
            epoch: { type: 'integer', description: "Grows with every change of the node's keys or rotation phase.", minimum: 0, maximum: MAX_SAFE },
            rotation: {
              type: 'object',
              description: 'Present while the key of one lane rotates.',
              required: ['lane', 'phase'],
              properties: { lane: { type: 'integer', enum: [0, 1] }, phase: { type: 'string', enum: ['drain', 'rekey'] } },
            },
            acks: {
              type: 'object',
              description: 'cluster/node of a rotating peer -> the epoch of it this node has confirmed.',
              maxProperties: 10000,
              additionalProperties: { type: 'integer', minimum: 0, maximum: MAX_SAFE },
            },
          },
          'x-kubernetes-validations': [{ rule: 'self.lanes[0].publicKey != self.lanes[1].publicKey', message: 'the two lanes must have different keys' }],
        },
        ipsec: {
          type: 'object',
          required: ['keyIds', 'sendKeyId'],
          properties: {
            keyIds: { type: 'array', description: 'Mesh key ids the node accepts.', minItems: 1, maxItems: 15, items: { type: 'integer', minimum: 1, maximum: 15 } },
            sendKeyId: { type: 'integer', description: 'The key id it sends under.', minimum: 1, maximum: 15 },
          },
          'x-kubernetes-validations': [{ rule: 'self.sendKeyId in self.keyIds', message: 'sendKeyId must be one of keyIds' }],
        },
      },
    },
  },
);

// packages/identity/src/labels.ts (makeLabel) and numeric.ts.
const DNS_SUBDOMAIN = '[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?([.][a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*';
const LABEL_NAME = '[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?';
const RESERVED = ['host', 'world', 'unmanaged', 'health', 'init', 'remote-node', 'kube-apiserver', 'ingress', 'world-ipv4', 'world-ipv6'];
const weftIdentitySchema = {
  ...root(
    { maxLength: 8, pattern: '^[1-9][0-9]{0,7}$' },
    {
      type: 'object',
      required: ['labels'],
      properties: {
        labels: {
          type: 'object',
          description: 'The labels the identity stands for, "source:key" -> value, e.g. "k8s:app": "web". Always carries k8s:weft.io/cluster.',
          minProperties: 1,
          maxProperties: 256,
          required: ['k8s:weft.io/cluster'],
          additionalProperties: { type: 'string', maxLength: 63, pattern: `^(${LABEL_NAME})?$` },
          'x-kubernetes-validations': [
            {
              rule: `self.all(k, k.matches('^[a-z0-9][a-z0-9-]{0,31}:(${DNS_SUBDOMAIN}/)?${LABEL_NAME}$') && (!k.contains('/') || k.indexOf('/') - k.indexOf(':') <= 254))`,
              message: 'keys must be source:key with source [a-z0-9-] (1-32), key [prefix/]name as for Kubernetes labels',
            },
            {
              rule: `self.all(k, !k.startsWith('reserved:') || k in [${RESERVED.map((r) => `'reserved:${r}'`).join(', ')}] && self[k] == '')`,
              message: 'reserved labels name a reserved identity and take no value',
            },
          ],
        },
      },
      'x-kubernetes-validations': [{ rule: 'self == oldSelf', message: 'an identity keeps its labels: spec is immutable' }],
    },
  ),
  'x-kubernetes-validations': [
    {
      rule: 'int(self.metadata.name) >= 65536 && int(self.metadata.name) <= 16777215 && int(self.metadata.name) % 65536 >= 256',
      message: 'metadata.name must be an allocated identity: cluster id (1-255) * 65536 + local id (256-65535)',
    },
  ],
};

function crds() {
  return {
    'weft.io_weftnetworkpolicies.yaml': crd({
      kind: 'WeftNetworkPolicy',
      plural: 'weftnetworkpolicies',
      shortNames: ['wnp'],
      scope: 'Namespaced',
      description: "Identity-based policy for the endpoints of one namespace (shaped like CiliumNetworkPolicy). Peers in fromEndpoints/toEndpoints are of the policy's namespace unless a selector names io.kubernetes.pod.namespace; selectors without weft.io/cluster match the policy's own cluster only.",
      schema: root({ maxLength: 253, pattern: POLICY_NAME }, policySpec(false)),
      columns: policyColumns,
    }),
    'weft.io_weftclusterwidenetworkpolicies.yaml': crd({
      kind: 'WeftClusterwideNetworkPolicy',
      plural: 'weftclusterwidenetworkpolicies',
      shortNames: ['wcnp'],
      scope: 'Cluster',
      description: 'Identity-based policy for endpoints of every namespace; peer selectors match endpoints of every namespace.',
      schema: root({ maxLength: 253, pattern: POLICY_NAME }, policySpec(true)),
      columns: policyColumns,
    }),
    'weft.io_weftnodes.yaml': crd({
      kind: 'WeftNode',
      plural: 'weftnodes',
      shortNames: ['wn'],
      scope: 'Cluster',
      description: "A node as its Weft agent publishes it (named like the Kubernetes Node): spec is the agent's configuration, status what peers need to encrypt to it. The same fields as the agent's kvstore node record.",
      schema: weftNodeSchema,
      status: true,
      columns: [
        { name: 'Cluster', type: 'string', jsonPath: '.spec.cluster' },
        { name: 'Node IP', type: 'string', jsonPath: '.spec.nodeIp' },
        { name: 'Pod CIDR', type: 'string', jsonPath: '.spec.podCidr' },
        { name: 'Routing', type: 'string', jsonPath: '.spec.routing', priority: 1 },
        { name: 'Epoch', type: 'integer', jsonPath: '.status.wireguard.epoch', priority: 1 },
      ],
    }),
    'weft.io_weftidentities.yaml': crd({
      kind: 'WeftIdentity',
      plural: 'weftidentities',
      shortNames: ['wid'],
      scope: 'Cluster',
      description: "A numeric security identity (the object's name, decimal) and the labels it stands for, as Weft's allocator assigned it (like CiliumIdentity).",
      schema: weftIdentitySchema,
      columns: [],
    }),
  };
}

function render(obj) {
  return `# Generated by hack/gen-crds.js; do not edit (change the generator and run it).\n${YAML.stringify(obj, { lineWidth: 0 })}`;
}

module.exports = { crds, render, OUT };

if (require.main === module) {
  const check = process.argv.includes('--check');
  let stale = 0;
  mkdirSync(OUT, { recursive: true });
  for (const [file, obj] of Object.entries(crds())) {
    const path = join(OUT, file);
    const text = render(obj);
    let old = '';
    try {
      old = readFileSync(path, 'utf8');
    } catch {}
    if (old === text) continue;
    stale++;
    if (check) process.stderr.write(`${path} is out of date: run node hack/gen-crds.js\n`);
    else writeFileSync(path, text);
  }
  if (check && stale > 0) process.exit(1);
}
