/** The weft command line. Exit codes: 0 ok, 1 failure, 2 usage error. */
/* Each command module is loaded when its command runs: a clustermesh-apiserver or a probe pod loads
   only its own (the agent, the lab and the Kubernetes client stay unloaded where unused). */
import { exitOnError, UsageError } from './output.js';

const USAGE = `Usage: weft COMMAND [options]      (every command takes -o json)

Lab (needs root):
  lab up [--nodes M] [--routing vxlan|direct|geneve] [--clusters N] [--names a,b] [--no-connect]
         [--kubernetes]        also per cluster a real control plane and real nodes (kubelet, containerd), Weft installed by helm
  lab down                     remove everything the lab created (idempotent)
  lab exec [cluster/]ns/pod -- CMD [ARGS...]
  lab status

Resources (standalone mode, stored in the cluster's etcd):
  apply -f FILE [--cluster NAME | --etcd ENDPOINT] [--max-txn-ops N]
  delete -f FILE [--cluster NAME] [--ignore-not-found] [--max-txn-ops N]

Inspect (per cluster, all nodes unless --node):
  status | endpoint list | policy get
  service list                 ClusterIP and backends per cluster (all lab clusters unless --cluster)
  service resync               resolve every service again on the chosen nodes (normally changes apply one by one)
  encrypt status               WireGuard per node: lanes, keys, epoch, rotation; per peer: encrypted, lane, handshakes, bytes
  encrypt rotate               rotate WireGuard keys (make-before-break), node after node; --no-wait, --timeout
  bpf ipcache list | bpf nodes list | bpf lb list | bpf policy get ENDPOINT
  identity list | identity get ID | identity gc   [--cluster NAME | --etcd ENDPOINT]
  observe [--follow] [--last N] [--since D] [--[from-|to-]pod|namespace|label|identity|ip|port X] [--not ...] [-o compact|table|json|jsonpb]
  connectivity test [--cluster NAME] [--keep]
  clustermesh status [--cluster NAME | --config APISERVER-CONFIG]
  clustermesh connect|disconnect --cluster A --to B          lab clusters

Kubernetes (clusters running the Helm chart, through a kubeconfig):
  clustermesh connect|disconnect --context A --destination-context B [--kubeconfig PATH]
      [--namespace kube-system] [--release weft] [--wait] [--timeout SECONDS]
                               exchange CAs, client certificates and addresses (Secret
                               weft-clustermesh-remotes on both sides), restart both apiservers
  connectivity test --context A [--destination-context B] [--kubeconfig PATH] [--image IMAGE]
      [--timeout SECONDS] [--keep]     the connectivity suite as pods in namespace weft-conntest

Node setup and probes (the Helm chart's pods run these):
  cni install --bin-dir DIR --conf-dir DIR [--socket PATH]   CNI plugin and conflist onto the host
  cni uninstall --bin-dir DIR --conf-dir DIR                 remove exactly what install wrote
  agent health [--socket PATH] [--liveness]                  exit 0 ready, 1 not ready (failing checks) or no answer
  agent uninstall [--cni-bin-dir D --cni-conf-dir D]        take Weft off this node (the chart's preStop with cni.uninstall)
  clustermesh-apiserver health --config FILE [--liveness]    the same for the clustermesh-apiserver
  uninstall-cleanup --cluster NAME [--namespace NS] [--release R] [--context C]
                               after helm uninstall (the chart's post-delete hook): delete the
                               cluster's WeftNodes and WeftIdentities once its agents are gone

Processes:
  agent --config FILE          a node agent (the lab starts these)
  clustermesh-apiserver --config FILE
  etcd-issuer --config FILE    per-node etcd certificates for agents (the chart runs it beside etcd)
  relay --config FILE          the cluster's flow relay: every node's observer and connected clusters' relays
  echo-server --tcp P --udp P --http P
  probe --http URL | --tcp HOST:PORT [--size BYTES | --stream SECONDS] | --udp HOST:PORT [--size BYTES]
  demo [--allocators N]        race identity allocators on a real etcd
`;

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'demo':
      return (await import('./commands/demo.js')).demo(rest);
    case 'identity':
      return (await import('./commands/identity.js')).identity(rest);
    case 'lab':
      return (await import('./commands/lab.js')).lab(rest);
    case 'apply':
      return (await import('./commands/apply.js')).apply(rest);
    case 'delete':
      return (await import('./commands/apply.js')).apply(rest, true);
    case 'status':
      return (await import('./commands/inspect.js')).status(rest);
    case 'endpoint':
      if (rest[0] !== 'list') throw new UsageError('Usage: weft endpoint list');
      return (await import('./commands/inspect.js')).endpointList(rest.slice(1));
    case 'policy':
      if (rest[0] !== 'get') throw new UsageError('Usage: weft policy get');
      return (await import('./commands/inspect.js')).policyGet(rest.slice(1));
    case 'service':
      return (await import('./commands/service.js')).service(rest);
    case 'encrypt':
      return (await import('./commands/encrypt.js')).encrypt(rest);
    case 'bpf':
      return (await import('./commands/inspect.js')).bpf(rest);
    case 'observe':
      return (await import('./commands/observe.js')).observe(rest);
    case 'connectivity':
      if (rest[0] !== 'test') throw new UsageError('Usage: weft connectivity test');
      return (await import('./commands/connectivity.js')).connectivityTest(rest.slice(1));
    case 'agent':
      if (rest[0] === 'health') return (await import('./commands/health.js')).agentHealth(rest.slice(1));
      if (rest[0] === 'uninstall') return (await import('./commands/agent-uninstall.js')).agentUninstall(rest.slice(1));
      return (await import('./commands/agent.js')).agent(rest);
    case 'cni':
      return (await import('./commands/cni.js')).cni(rest);
    case 'clustermesh-apiserver':
      return rest[0] === 'health' ? (await import('./commands/health.js')).apiserverHealth(rest.slice(1)) : (await import('./commands/clustermesh-apiserver.js')).clustermeshApiserver(rest);
    case 'clustermesh':
      return (await import('./commands/clustermesh.js')).clustermesh(rest);
    case 'relay':
      return (await import('./commands/relay.js')).relay(rest);
    case 'etcd-issuer':
      return (await import('./commands/etcd-issuer.js')).etcdIssuer(rest);
    case 'echo-server':
      return (await import('./commands/echo-server.js')).echoServer(rest);
    case 'probe':
      return (await import('./commands/probe.js')).probe(rest);
    case 'uninstall-cleanup':
      return (await import('./commands/uninstall-cleanup.js')).uninstallCleanupCommand(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return;
    default:
      throw new UsageError(`Unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
  }
}

main(process.argv.slice(2)).catch(exitOnError);
