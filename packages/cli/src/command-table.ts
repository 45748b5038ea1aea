/**
 * Every weft command and subcommand, once: its words, summary, usage, options and where the
 * top-level help lists it. The help (help.ts), the dispatch (main.ts walks these words), each
 * command's parse (parse-command-args.ts reads its entry's options) and the README's command table
 * (checked by command-table.test.ts) all come from here, so they cannot drift apart.
 *
 * A leaf: it imports nothing, so every command module can import its own entry. The handlers'
 * lazy loaders sit in main.ts, keyed by these ids and checked complete by the compiler (a loader
 * here would make table -> command -> table an import cycle).
 */

/** The sections of the top-level help, in order. */
export const GROUPS = {
  lab: 'Lab (needs root)',
  resources: "Resources (standalone mode, stored in the cluster's etcd)",
  inspect: 'Inspect (per cluster, all nodes unless --node)',
  kubernetes: 'Kubernetes (clusters running the Helm chart, through a kubeconfig)',
  node: "Node setup and probes (the Helm chart's pods run these)",
  processes: 'Processes',
} as const;
export type GroupId = keyof typeof GROUPS;

/** One option: what node:util parseArgs needs (type, short, multiple, default) and what the help shows. */
export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  /** Repeatable: the values come as an array. */
  readonly multiple?: boolean;
  /** Given to parseArgs, so the command sees it when the option is absent; shown in the help. */
  readonly default?: string | boolean;
  /** Shown in the help only: a default the command or a library works out (the option stays undefined when absent). */
  readonly defaultText?: string;
  /** The value's placeholder in the help: `--nodes N`. */
  readonly valueName?: string;
  readonly help: string;
}

/** A positional argument. */
export interface ArgSpec {
  readonly name: string;
  readonly help: string;
  readonly optional?: boolean;
  /** Takes every remaining argument (the last one only). */
  readonly variadic?: boolean;
}

/** A usage line of its own: listed in its own group of the top-level help, with its own summary. */
export interface UsageForm {
  readonly args: string;
  readonly summary: string;
  readonly group: GroupId;
}

export interface CommandInput {
  /** One line: what the command does. */
  readonly summary: string;
  /** Usage lines after `weft WORDS`; a plain string is listed under the entry's group with its summary. */
  readonly usage: readonly (string | UsageForm)[];
  readonly group: GroupId;
  readonly options: { readonly [name: string]: OptionSpec };
  readonly args?: readonly ArgSpec[];
  /** What follows `--` (lab exec's command): left to the command, described in the help. */
  readonly afterSeparator?: ArgSpec;
  /** Run by the lab, the chart or tests, not typed by people: left out of the README's command table. */
  readonly internal?: boolean;
  /** Also left out of the top-level help and of the choices an error lists first (the lab's own processes). */
  readonly hidden?: boolean;
}

export type CommandSpec = CommandInput & { readonly id: string; readonly words: readonly string[] };

/** Ids are the words joined by spaces; `words` is added from them. */
function commandTable<const T extends { readonly [id: string]: CommandInput }>(table: T): { readonly [K in keyof T & string]: T[K] & { readonly id: K; readonly words: readonly string[] } } {
  const out: Record<string, CommandSpec> = {};
  for (const [id, entry] of Object.entries(table)) out[id] = { ...entry, id, words: id.split(' ') };
  return out as { readonly [K in keyof T & string]: T[K] & { readonly id: K; readonly words: readonly string[] } };
}

// Options many commands share.
const OUTPUT = { type: 'string', short: 'o', valueName: 'json', help: 'json: print JSON for scripts instead of a table' } as const;
const CLUSTER = { type: 'string', valueName: 'NAME', defaultText: "the lab's first cluster", help: 'a lab cluster' } as const;
const NODE = { type: 'string', valueName: 'NODE', defaultText: 'every node of the cluster', help: 'one node of the cluster' } as const;
const AGENT = { type: 'string', valueName: 'SOCKET', help: "an agent's API socket to ask instead of the lab's agents" } as const;
const ETCD = { type: 'string', valueName: 'ENDPOINT', help: "any etcd, HOST:PORT (plain, no TLS), instead of a lab cluster's" } as const;
const AGENTS = { cluster: CLUSTER, node: NODE, agent: AGENT, output: OUTPUT } as const;
/** The agent's socket where the chart puts it (@weft/cni's DEFAULT_AGENT_SOCKET; a test keeps them equal). */
const AGENT_SOCKET = { type: 'string', valueName: 'PATH', default: '/var/run/weft/agent.sock', help: "the agent's API socket" } as const;
const CONFIG = { type: 'string', valueName: 'FILE', help: 'the configuration file (JSON), required' } as const;
const KUBE = {
  context: { type: 'string', valueName: 'A', help: 'the kubeconfig context of the first cluster (selects Kubernetes mode)' },
  'destination-context': { type: 'string', valueName: 'B', help: 'the kubeconfig context of the second cluster' },
  kubeconfig: { type: 'string', valueName: 'PATH', defaultText: '$KUBECONFIG, else ~/.kube/config', help: 'the kubeconfig' },
  namespace: { type: 'string', valueName: 'NS', defaultText: 'kube-system', help: "the chart's namespace" },
  release: { type: 'string', valueName: 'R', defaultText: 'weft', help: "the chart's release name" },
} as const;
const MESH_CONNECT = {
  cluster: { type: 'string', valueName: 'A', help: 'the first lab cluster (lab mode)' },
  to: { type: 'string', valueName: 'B', help: 'the second lab cluster' },
  ...KUBE,
  wait: { type: 'boolean', help: 'wait until both apiservers have rolled out' },
  timeout: { type: 'string', valueName: 'SECONDS', default: '300', help: 'how long --wait waits (Kubernetes mode)' },
  output: OUTPUT,
} as const;
const MESH_CONNECT_KUBE = '--context A --destination-context B [--kubeconfig PATH] [--namespace kube-system] [--release weft] [--wait] [--timeout SECONDS] [-o json]';

/** `weft observe`'s filters (observe-request.ts reads them from the parse's tokens, in order; command-table.test.ts checks this list against it). */
interface FilterOption {
  readonly type: 'string';
  readonly multiple: true;
  readonly valueName: string;
  readonly help: string;
}
const filter = (help: string, valueName = 'X'): FilterOption => ({ type: 'string', multiple: true, valueName, help });
/** `--pod`, `--from-pod`, `--to-pod` (typed by name, so parseCommandArgs types their values). */
function sided<N extends string>(name: N, what: string, valueName: string): Record<N | `from-${N}` | `to-${N}`, FilterOption> {
  return {
    [name]: filter(`flows whose source or destination ${what}`, valueName),
    [`from-${name}`]: filter(`flows whose source ${what}`, valueName),
    [`to-${name}`]: filter(`flows whose destination ${what}`, valueName),
  } as Record<N | `from-${N}` | `to-${N}`, FilterOption>;
}
const OBSERVE_FILTERS = {
  ...sided('pod', 'is this pod ([NAMESPACE/]POD)', 'POD'),
  ...sided('namespace', 'is in this namespace', 'NS'),
  ...sided('label', 'has this label (key=value)', 'LABEL'),
  ...sided('identity', 'has this identity', 'ID'),
  ...sided('ip', 'has this address', 'IP'),
  ...sided('port', 'uses this port', 'PORT'),
  'from-cluster': filter('flows from this cluster', 'CLUSTER'),
  'to-cluster': filter('flows to this cluster', 'CLUSTER'),
  service: filter('flows to this service (NAMESPACE/NAME)', 'SERVICE'),
  'to-service': filter('the same as --service', 'SERVICE'),
  protocol: filter('flows of this protocol (tcp, udp, icmp, ...)', 'P'),
  verdict: filter('flows with this verdict (FORWARDED, DROPPED, ...)', 'V'),
  'drop-reason': filter('dropped flows with this reason', 'R'),
  node: filter('flows seen on this node (a trailing * matches a prefix)', 'NODE'),
  'node-cluster': filter("flows seen by this cluster's nodes", 'CLUSTER'),
  policy: filter('flows a policy of this name decided', 'POLICY'),
  'tcp-flags': filter('TCP flows with these flags (SYN, ACK, ...)', 'FLAGS'),
  'traffic-direction': filter('ingress or egress', 'DIR'),
  encrypted: { type: 'boolean', help: 'encrypted flows only' },
  unencrypted: { type: 'boolean', help: 'flows sent in the clear only' },
  reply: { type: 'boolean', help: 'replies only' },
  'not-reply': { type: 'boolean', help: 'no replies' },
  not: { type: 'boolean', help: 'the next filter excludes what it matches' },
} as const;
/** `--context` of weft observe and weft policy suggest: run in the chart's relay pod (relay-pod.ts). */
const OBSERVE_KUBE = {
  context: { type: 'string', valueName: 'C', help: "a cluster running the chart: ask its relay (the command runs in the relay's pod)" },
  kubeconfig: { type: 'string', valueName: 'PATH', help: 'the kubeconfig of --context (default: what kubectl reads)' },
  release: { type: 'string', valueName: 'R', default: 'weft', help: 'the chart\'s release (with --context)' },
  'weft-namespace': { type: 'string', valueName: 'NS', default: 'kube-system', help: "the release's namespace (with --context)" },
} as const;
const OBSERVER_SERVER = { type: 'string', valueName: 'unix:///PATH', help: "an observer's socket to ask (a relay's or an agent's) instead of the lab's" } as const;

export const COMMANDS = commandTable({
  'lab up': {
    group: 'lab',
    summary: 'build the lab: clusters of nodes in network namespaces, each with its etcd, agents and demo pods, connected by their clustermesh-apiservers',
    usage: ['[--nodes M] [--routing vxlan|direct|geneve] [--clusters N] [--names a,b] [--encryption wireguard|ipsec|off] [--no-connect] [--no-demo] [--kubernetes] [-o json]'],
    options: {
      nodes: { type: 'string', valueName: 'M', default: '2', help: 'nodes per cluster, 1-8' },
      routing: { type: 'string', valueName: 'vxlan|direct|geneve', default: 'vxlan', help: 'how pod traffic crosses nodes: a VXLAN or Geneve (kernels with Geneve) tunnel, or direct routes' },
      clusters: { type: 'string', valueName: 'N', default: '1', help: 'clusters, 1-4, named c1, c2, ...' },
      names: { type: 'string', valueName: 'a,b', help: 'the clusters\' names instead (1-8 lowercase letters and digits, starting with a letter)' },
      encryption: { type: 'string', valueName: 'wireguard|ipsec|off', default: 'wireguard', help: 'encryption between nodes (ipsec needs ESP in the kernel)' },
      'no-connect': { type: 'boolean', default: false, help: 'leave the clusters unconnected' },
      'no-demo': { type: 'boolean', default: false, help: 'no demo pods' },
      kubernetes: { type: 'boolean', default: false, help: 'also per cluster a real control plane and real nodes (kubelet, containerd), Weft installed by helm' },
      output: OUTPUT,
    },
  },
  'lab down': { group: 'lab', summary: 'remove everything the lab created (idempotent)', usage: ['[-o json]'], options: { output: OUTPUT } },
  'lab exec': {
    group: 'lab',
    summary: "run a command in a pod's network namespace; exits with its exit status",
    usage: ['[cluster/]ns/pod -- CMD [ARGS...]'],
    options: {},
    args: [{ name: '[cluster/]ns/pod', help: "the pod (cluster: the lab's first unless named)" }],
    afterSeparator: { name: 'CMD [ARGS...]', help: 'the command to run in the pod, after --' },
  },
  'lab status': { group: 'lab', summary: "the lab's clusters and nodes: ids, node IPs, pod CIDRs", usage: ['[-o json]'], options: { output: OUTPUT } },
  'lab forward': {
    group: 'lab', internal: true, hidden: true,
    summary: "the lab's loopback bridge to a cluster's API server",
    usage: ['--listen ADDRESS --to ADDRESS'],
    options: {
      listen: { type: 'string', valueName: 'unix:/path|tcp:IP:port', help: 'where to listen, required' },
      to: { type: 'string', valueName: 'unix:/path|tcp:IP:port', help: 'where to connect, required' },
    },
  },
  'lab node-runtime': {
    group: 'lab', internal: true, hidden: true,
    summary: "a lab node's containerd and kubelet (the lab runs it in the node's network namespace and a new mount namespace)",
    usage: ['--spec FILE'],
    options: { spec: { type: 'string', valueName: 'FILE', help: "the node's runtime spec (JSON), required" } },
  },
  'lab kube-proxy': {
    group: 'lab', internal: true, hidden: true,
    summary: "Services' ClusterIPs and NodePorts for a lab node's host network",
    usage: ['--netns NS --kubeconfig FILE [--node NAME]'],
    options: {
      netns: { type: 'string', valueName: 'NS', help: "the node's network namespace, required" },
      kubeconfig: { type: 'string', valueName: 'FILE', help: 'the kubeconfig to watch Services with, required' },
      node: { type: 'string', valueName: 'NAME', help: 'the node, for the logs' },
    },
  },

  apply: {
    group: 'resources',
    summary: "store Kubernetes YAML (Namespace, Pod, Service, NetworkPolicy, Weft policies) in the cluster's etcd; all or nothing",
    usage: ['-f FILE [--cluster NAME | --etcd ENDPOINT] [--max-txn-ops N] [-o json]'],
    options: {
      filename: { type: 'string', short: 'f', multiple: true, valueName: 'FILE', help: 'a YAML file of resources (repeat for more), required' },
      cluster: CLUSTER,
      etcd: ETCD,
      'max-txn-ops': { type: 'string', valueName: 'N', defaultText: '4096 for a lab cluster, else 128', help: "the etcd's --max-txn-ops: more is checked whole, then written in transactions of N" },
      output: OUTPUT,
    },
  },
  delete: {
    group: 'resources',
    summary: "delete the resources a file names from the cluster's etcd",
    usage: ['-f FILE [--cluster NAME | --etcd ENDPOINT] [--ignore-not-found] [--max-txn-ops N] [-o json]'],
    options: {
      filename: { type: 'string', short: 'f', multiple: true, valueName: 'FILE', help: 'a YAML file of resources (repeat for more), required' },
      cluster: CLUSTER,
      etcd: ETCD,
      'ignore-not-found': { type: 'boolean', default: false, help: 'a resource that is not there is no error' },
      'max-txn-ops': { type: 'string', valueName: 'N', defaultText: '4096 for a lab cluster, else 128', help: "the etcd's --max-txn-ops: more is checked whole, then written in transactions of N" },
      output: OUTPUT,
    },
  },

  status: { group: 'inspect', summary: 'per node: the agent, its counts, conntrack pressure, map use and failing endpoint policies', usage: ['[--cluster NAME] [--node NODE] [-o json]'], options: AGENTS },
  'endpoint list': { group: 'inspect', summary: 'endpoints per node: pod, IP, identity, policy enforcement and state', usage: ['[--cluster NAME] [--node NODE] [-o json]'], options: AGENTS },
  'policy get': { group: 'inspect', summary: "the policies a node's agent holds: what they select, rules, audit mode", usage: ['[--cluster NAME] [--node NODE] [-o json]'], options: AGENTS },
  'policy suggest': {
    group: 'inspect',
    summary: 'least-privilege NetworkPolicies (Weft policies where needed) admitting exactly the connections the cluster observed, per workload',
    usage: ['[--cluster NAME | --server unix:///PATH] [--namespace NS] [--since D] [--world-cidr-limit N] [-o yaml|json]', '... --context C [--kubeconfig PATH] [--release weft] [--weft-namespace kube-system]'],
    options: {
      cluster: { ...CLUSTER, help: 'the lab cluster whose workloads get policies (with --server: the cluster of the flows)' },
      server: OBSERVER_SERVER,
      ...OBSERVE_KUBE,
      namespace: { type: 'string', valueName: 'NS', defaultText: 'every namespace', help: 'policies for the workloads of this namespace only (their peers may be anywhere)' },
      since: { type: 'string', valueName: 'D', defaultText: 'every flow held', help: 'flows since a duration ago (30s, 5m, 2h, 1d) or an RFC 3339 time' },
      'world-cidr-limit': { type: 'string', valueName: 'N', defaultText: '16', help: 'above this many world addresses for a workload and direction, the world entity instead of a /32 each' },
      output: { type: 'string', short: 'o', valueName: 'yaml|json', defaultText: 'yaml', help: 'YAML documents separated by --- (what weft apply -f takes), or a JSON List' },
    },
  },
  'service list': { group: 'inspect', summary: 'ClusterIP and backends per cluster (all lab clusters unless --cluster)', usage: ['[--cluster NAME] [--node NODE] [-o json]'], options: AGENTS },
  'service resync': { group: 'inspect', summary: 'resolve every service again on the chosen nodes (normally changes apply one by one)', usage: ['[--cluster NAME] [--node NODE] [-o json]'], options: AGENTS },
  'encrypt status': { group: 'inspect', summary: 'WireGuard per node: lanes, keys, epoch, rotation; per peer: encrypted, lane, handshakes, bytes (IPsec: key ids, SAs)', usage: ['[--cluster NAME] [--node NODE] [-o json]'], options: AGENTS },
  'encrypt rotate': {
    group: 'inspect',
    summary: 'rotate WireGuard keys (make-before-break), node after node, each waiting for every peer (IPsec: a new mesh key id)',
    usage: ['[--cluster NAME] [--node NODE] [--no-wait] [--timeout SECONDS] [-o json]'],
    options: {
      ...AGENTS,
      'no-wait': { type: 'boolean', help: 'start each rotation and go on without waiting for the peers' },
      timeout: { type: 'string', valueName: 'SECONDS', default: '120', help: 'how long to wait for each node' },
    },
  },
  'bpf ipcache list': { group: 'inspect', summary: 'the ipcache map per node: prefix, identity, tunnel endpoint, flags', usage: ['[--cluster NAME] [--node NODE] [-o json]'], options: AGENTS },
  'bpf nodes list': { group: 'inspect', summary: 'which addresses may send tunnel packets, of which node and cluster', usage: ['[--cluster NAME] [--node NODE] [-o json]'], options: AGENTS },
  'bpf lb list': { group: 'inspect', summary: 'the service maps per node: frontend -> backends', usage: ['[--cluster NAME] [--node NODE] [-o json]'], options: AGENTS },
  'bpf policy get': {
    group: 'inspect',
    summary: "an endpoint's policy map as the kernel holds it, with per-rule packet counters",
    usage: ['ENDPOINT [--cluster NAME] [--node NODE] [-o json]'],
    options: AGENTS,
    args: [{ name: 'ENDPOINT', help: 'the endpoint: its id, IP or namespace/pod' }],
  },
  'identity list': {
    group: 'inspect',
    summary: "a cluster's identities and their labels",
    usage: ['[--cluster NAME | --etcd ENDPOINT] [--cluster-id ID] [-o json]'],
    options: { cluster: CLUSTER, etcd: ETCD, 'cluster-id': { type: 'string', valueName: 'ID', defaultText: "the lab cluster's, else 1", help: 'the cluster id whose identities to read' }, output: OUTPUT },
  },
  'identity get': {
    group: 'inspect',
    summary: "one identity's labels",
    usage: ['ID [--cluster NAME | --etcd ENDPOINT] [--cluster-id ID] [-o json]'],
    options: { cluster: CLUSTER, etcd: ETCD, 'cluster-id': { type: 'string', valueName: 'ID', defaultText: "the lab cluster's, else 1", help: 'the cluster id whose identities to read' }, output: OUTPUT },
    args: [{ name: 'ID', help: 'the identity, a decimal number' }],
  },
  'identity gc': {
    group: 'inspect',
    summary: 'one garbage-collection round: mark unused identities, delete those marked before (run twice)',
    usage: ['[--cluster NAME | --etcd ENDPOINT] [-o json]'],
    options: { cluster: CLUSTER, etcd: ETCD, output: OUTPUT },
  },
  observe: {
    group: 'inspect',
    summary: 'flows from every node through the observer API (the relay, else each agent), filtered as hubble observe filters',
    usage: ['[--follow] [--last N] [--since D] [--[from-|to-]pod|namespace|label|identity|ip|port X] [--not ...] [-o compact|table|json|jsonpb]', '... --context C [--kubeconfig PATH] [--release weft] [--weft-namespace kube-system]'],
    options: {
      follow: { type: 'boolean', short: 'f', default: false, help: 'keep printing new flows' },
      last: { type: 'string', valueName: 'N', help: 'the last N flows' },
      all: { type: 'boolean', default: false, help: 'every flow held' },
      since: { type: 'string', valueName: 'D', help: 'flows since a duration ago (30s, 5m, 2h, 1d) or an RFC 3339 time' },
      until: { type: 'string', valueName: 'D', help: 'flows until a duration ago or an RFC 3339 time' },
      ...OBSERVE_FILTERS,
      cluster: CLUSTER,
      server: OBSERVER_SERVER,
      ...OBSERVE_KUBE,
      output: { type: 'string', short: 'o', valueName: 'compact|table|json|jsonpb', defaultText: 'compact', help: "lines, a table, JSON lines of flows, or protobuf's JSON of each response" },
    },
  },
  'observe status': {
    group: 'inspect',
    summary: "the relay's (or each agent's) observer: flows held, rate, lost events, connected nodes",
    usage: ['[--cluster NAME | --server unix:///PATH | --context C] [-o json]'],
    options: { cluster: CLUSTER, server: OBSERVER_SERVER, ...OBSERVE_KUBE, output: OUTPUT },
  },
  'observe nodes': {
    group: 'inspect',
    summary: 'the nodes the relay reads flows from, with their state',
    usage: ['[--cluster NAME | --server unix:///PATH | --context C] [-o json]'],
    options: { cluster: CLUSTER, server: OBSERVER_SERVER, ...OBSERVE_KUBE, output: OUTPUT },
  },
  ui: {
    group: 'inspect',
    summary: "the service map: a web page of every cluster's workloads and Services as a live graph, edges coloured by verdict, drops with their reasons",
    usage: ['[--cluster NAME | --server unix:///PATH] [--listen 127.0.0.1:12000] [--since 5m] [--expire 15m]'],
    options: {
      cluster: CLUSTER,
      server: OBSERVER_SERVER,
      listen: { type: 'string', valueName: 'HOST:PORT', default: '127.0.0.1:12000', help: 'where to serve the page (port 0: any free one); it has no login, so keep it on loopback' },
      since: { type: 'string', valueName: 'D', default: '5m', help: 'start with the flows since then (30s, 5m, 2h, 1d, or an RFC 3339 time)' },
      expire: { type: 'string', valueName: 'D', default: '15m', help: 'an edge not seen for this long leaves the map' },
    },
  },
  'connectivity test': {
    group: 'inspect',
    summary: 'deploy test pods, a policy and a service, check every case with real traffic (and across connected clusters), clean up',
    usage: [
      '[--cluster NAME] [--keep] [-o json]',
      { group: 'kubernetes', args: '--context A [--destination-context B] [--kubeconfig PATH] [--image IMAGE] [--timeout SECONDS] [--keep] [-o json]', summary: 'the connectivity suite as pods in namespace weft-conntest' },
    ],
    options: {
      cluster: CLUSTER,
      keep: { type: 'boolean', default: false, help: 'leave what the test deployed in place' },
      ...KUBE,
      image: { type: 'string', valueName: 'IMAGE', defaultText: "the image of the chart's agent", help: 'the test pods\' image' },
      timeout: { type: 'string', valueName: 'SECONDS', defaultText: '300', help: 'how long to wait for the echo servers, then for the probes (Kubernetes mode)' },
      output: OUTPUT,
    },
  },
  'clustermesh status': {
    group: 'inspect',
    summary: 'per remote cluster: state, synced kinds, counts, rejected records, sync time, last error',
    usage: ['[--cluster NAME | --etcd ENDPOINT | --config APISERVER-CONFIG] [-o json]'],
    options: { cluster: CLUSTER, etcd: ETCD, config: { type: 'string', valueName: 'APISERVER-CONFIG', help: "the clustermesh-apiserver's own configuration (in its pod)" }, output: OUTPUT },
  },
  'clustermesh connect': {
    group: 'inspect',
    summary: 'connect two lab clusters: exchange CAs, client certificates and addresses, restart their apiservers',
    usage: [
      '--cluster A --to B [-o json]',
      { group: 'kubernetes', args: MESH_CONNECT_KUBE, summary: 'exchange CAs, client certificates and addresses (Secret weft-clustermesh-remotes on both sides), restart both apiservers' },
    ],
    options: MESH_CONNECT,
  },
  'clustermesh disconnect': {
    group: 'inspect',
    summary: "disconnect two lab clusters: remove the link and each one's state of the other",
    usage: [
      '--cluster A --to B [-o json]',
      { group: 'kubernetes', args: MESH_CONNECT_KUBE, summary: "remove each side's remote from Secret weft-clustermesh-remotes, restart both apiservers" },
    ],
    options: MESH_CONNECT,
  },

  'cni install': {
    group: 'node',
    summary: 'CNI plugin and conflist onto the host (idempotent)',
    usage: ['--bin-dir DIR --conf-dir DIR [--socket PATH] [-o json]'],
    options: {
      'bin-dir': { type: 'string', valueName: 'DIR', help: "the host's CNI plugin directory, required" },
      'conf-dir': { type: 'string', valueName: 'DIR', help: "the host's CNI configuration directory, required" },
      socket: { ...AGENT_SOCKET, help: 'the agent socket the conflist names' },
      output: OUTPUT,
    },
  },
  'cni uninstall': {
    group: 'node',
    summary: 'remove exactly what install wrote',
    usage: ['--bin-dir DIR --conf-dir DIR [-o json]'],
    options: {
      'bin-dir': { type: 'string', valueName: 'DIR', help: "the host's CNI plugin directory, required" },
      'conf-dir': { type: 'string', valueName: 'DIR', help: "the host's CNI configuration directory, required" },
      output: OUTPUT,
    },
  },
  'agent health': {
    group: 'node',
    summary: 'exit 0 ready, 1 not ready (failing checks) or no answer in 5 s',
    usage: ['[--socket PATH] [--liveness] [-o json]'],
    options: { socket: AGENT_SOCKET, liveness: { type: 'boolean', help: 'an answer is enough (ready or not)' }, output: OUTPUT },
  },
  'agent uninstall': {
    group: 'node',
    summary: "take Weft off this node (the chart's preStop with cni.uninstall)",
    usage: ['[--socket PATH] [--cni-bin-dir D --cni-conf-dir D] [-o json]'],
    options: {
      socket: AGENT_SOCKET,
      'cni-bin-dir': { type: 'string', valueName: 'D', help: 'also remove the CNI plugin from here (with --cni-conf-dir)' },
      'cni-conf-dir': { type: 'string', valueName: 'D', help: 'and its conflist from here (with --cni-bin-dir)' },
      output: OUTPUT,
    },
  },
  'clustermesh-apiserver health': {
    group: 'node',
    summary: 'exit 0 when the clustermesh-apiserver is ready, 1 when not (failing checks) or no answer in 5 s',
    usage: ['--config FILE [--liveness] [-o json]'],
    options: { config: { ...CONFIG, help: "the apiserver's configuration, required" }, liveness: { type: 'boolean', help: 'an answer is enough (ready or not)' }, output: OUTPUT },
  },
  'uninstall-cleanup': {
    group: 'node',
    summary: "after helm uninstall (the chart's post-delete hook): delete the cluster's WeftNodes and WeftIdentities once its agents are gone",
    usage: ['--cluster NAME [--namespace NS] [--release R] [--context C] [--timeout SECONDS] [-o json]'],
    options: {
      cluster: { type: 'string', valueName: 'NAME', help: 'the Weft cluster name, required' },
      namespace: KUBE.namespace,
      release: KUBE.release,
      context: { type: 'string', valueName: 'C', defaultText: "the pod's ServiceAccount", help: 'a kubeconfig context, to run it by hand' },
      timeout: { type: 'string', valueName: 'SECONDS', default: '300', help: "how long to wait for the release's pods to go" },
      output: OUTPUT,
    },
  },

  agent: {
    group: 'processes', internal: true,
    summary: 'a node agent (the lab and the chart start these)',
    usage: ['--config FILE'],
    options: { config: CONFIG },
  },
  'clustermesh-apiserver': {
    group: 'processes', internal: true,
    summary: "a cluster's clustermesh-apiserver",
    usage: ['--config FILE'],
    options: { config: CONFIG },
  },
  'etcd-issuer': {
    group: 'processes', internal: true,
    summary: 'per-node etcd certificates for agents (the chart runs it beside etcd)',
    usage: ['--config FILE'],
    options: { config: CONFIG },
  },
  relay: {
    group: 'processes', internal: true,
    summary: "the cluster's flow relay: every node's observer and connected clusters' relays",
    usage: ['--config FILE'],
    options: { config: CONFIG },
  },
  'echo-server': {
    group: 'processes', internal: true,
    summary: 'TCP and UDP echo; HTTP answers JSON naming the server, its cluster and the client address',
    usage: ['--tcp P --udp P --http P [--name N]'],
    options: {
      tcp: { type: 'string', valueName: 'P', help: 'a TCP echo port' },
      udp: { type: 'string', valueName: 'P', help: 'a UDP echo port' },
      http: { type: 'string', valueName: 'P', help: 'an HTTP port' },
      name: { type: 'string', valueName: 'N', defaultText: '$WEFT_POD, else the host name', help: 'the name HTTP answers with' },
    },
  },
  probe: {
    group: 'processes', internal: true,
    summary: 'one connection attempt; prints JSON; exit 0 when the peer answered, 1 when not',
    usage: ['--http URL | --tcp HOST:PORT [--size BYTES | --stream SECONDS] | --udp HOST:PORT [--size BYTES]'],
    options: {
      http: { type: 'string', valueName: 'URL', help: 'an HTTP GET, answered with 200' },
      tcp: { type: 'string', valueName: 'HOST:PORT', help: 'a TCP echo' },
      udp: { type: 'string', valueName: 'HOST:PORT', help: 'a UDP echo' },
      timeout: { type: 'string', valueName: 'MS', default: '2000', help: 'per attempt' },
      size: { type: 'string', valueName: 'BYTES', help: 'send this many bytes; all must come back (TCP, UDP)' },
      stream: { type: 'string', valueName: 'SECONDS', help: 'one TCP connection this long, every byte echoed in order' },
      attempts: { type: 'string', valueName: 'N', default: '1', help: 'try up to N times, 500 ms apart' },
      'expect-clusters': { type: 'string', valueName: 'a,b', help: 'succeed once answers came from each cluster (HTTP)' },
      'termination-log': { type: 'string', valueName: 'FILE', help: 'also write the JSON here' },
    },
  },
  demo: {
    group: 'processes',
    summary: 'race identity allocators on a real etcd',
    usage: ['[--allocators N] [--cluster NAME] [--cluster-id ID] [-o json]'],
    options: {
      allocators: { type: 'string', valueName: 'N', default: '4', help: 'allocators racing, 1-64' },
      cluster: { type: 'string', valueName: 'NAME', default: 'c1', help: 'the cluster name in the labels' },
      'cluster-id': { type: 'string', valueName: 'ID', default: '1', help: 'the cluster id' },
      output: OUTPUT,
    },
  },
});

export type CommandId = keyof typeof COMMANDS;
/** Any entry of the table, as the dispatch and the help see it. */
export type CommandEntry = CommandSpec & { readonly id: CommandId };
