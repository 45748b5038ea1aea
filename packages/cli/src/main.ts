/** The weft command line. Exit codes: 0 ok, 1 failure, 2 usage error. */
/* The commands, their options and the help are command-table.ts's; this file follows the command
   line down the table's words and runs the command's handler. Each command module is loaded when
   its command runs: a clustermesh-apiserver or a probe pod loads only its own (the agent, the lab
   and the Kubernetes client stay unloaded where unused). */
import type { CommandId } from './command-table.js';
import { findCommand, needsCommand, ROOT, type CommandNode } from './command-tree.js';
import { exitOnError, printJson } from './output.js';

type Handler = (argv: string[]) => Promise<void>;

/** Every command's handler, loaded on use; the type makes it one per table entry, no more, no less. */
const HANDLERS: { readonly [K in CommandId]: () => Promise<Handler> } = {
  'lab up': async () => (await import('./commands/lab.js')).labUp,
  'lab down': async () => (await import('./commands/lab.js')).labDown,
  'lab exec': async () => (await import('./commands/lab.js')).labExec,
  'lab status': async () => (await import('./commands/lab.js')).labStatus,
  'lab forward': async () => (await import('./commands/lab.js')).labForward,
  'lab node-runtime': async () => (await import('./commands/lab.js')).labNodeRuntime,
  'lab kube-proxy': async () => (await import('./commands/lab.js')).labKubeProxy,
  apply: async () => (await import('./commands/apply.js')).apply,
  delete: async () => (await import('./commands/apply.js')).deleteResources,
  status: async () => (await import('./commands/inspect.js')).status,
  'endpoint list': async () => (await import('./commands/inspect.js')).endpointList,
  'policy get': async () => (await import('./commands/inspect.js')).policyGet,
  'policy suggest': async () => (await import('./commands/policy-suggest.js')).policySuggest,
  'service list': async () => (await import('./commands/service.js')).serviceList,
  'service resync': async () => (await import('./commands/service.js')).serviceResync,
  'encrypt status': async () => (await import('./commands/encrypt.js')).encryptStatus,
  'encrypt rotate': async () => (await import('./commands/encrypt.js')).encryptRotate,
  'bpf ipcache list': async () => (await import('./commands/inspect.js')).bpfIpcacheList,
  'bpf nodes list': async () => (await import('./commands/inspect.js')).bpfNodesList,
  'bpf lb list': async () => (await import('./commands/inspect.js')).bpfLbList,
  'bpf policy get': async () => (await import('./commands/inspect.js')).bpfPolicyGet,
  'identity list': async () => (await import('./commands/identity.js')).identityList,
  'identity get': async () => (await import('./commands/identity.js')).identityGet,
  'identity gc': async () => (await import('./commands/identity.js')).identityGc,
  observe: async () => (await import('./commands/observe.js')).observe,
  'observe status': async () => (await import('./commands/observe.js')).observeStatus,
  'observe nodes': async () => (await import('./commands/observe.js')).observeNodes,
  ui: async () => (await import('./commands/ui.js')).ui,
  'connectivity test': async () => (await import('./commands/connectivity.js')).connectivityTest,
  'clustermesh status': async () => (await import('./commands/clustermesh.js')).clustermeshStatus,
  'clustermesh connect': async () => (await import('./commands/clustermesh.js')).clustermeshConnect,
  'clustermesh disconnect': async () => (await import('./commands/clustermesh.js')).clustermeshDisconnect,
  'cni install': async () => (await import('./commands/cni.js')).cniInstall,
  'cni uninstall': async () => (await import('./commands/cni.js')).cniUninstall,
  'agent health': async () => (await import('./commands/health.js')).agentHealth,
  'agent uninstall': async () => (await import('./commands/agent-uninstall.js')).agentUninstall,
  'clustermesh-apiserver health': async () => (await import('./commands/health.js')).apiserverHealth,
  'uninstall-cleanup': async () => (await import('./commands/uninstall-cleanup.js')).uninstallCleanupCommand,
  agent: async () => (await import('./commands/agent.js')).agent,
  'clustermesh-apiserver': async () => (await import('./commands/clustermesh-apiserver.js')).clustermeshApiserver,
  'etcd-issuer': async () => (await import('./commands/etcd-issuer.js')).etcdIssuer,
  relay: async () => (await import('./commands/relay.js')).relay,
  'echo-server': async () => (await import('./commands/echo-server.js')).echoServer,
  probe: async () => (await import('./commands/probe.js')).probe,
  demo: async () => (await import('./commands/demo.js')).demo,
};

async function main(argv: string[]): Promise<void> {
  // Help: `weft`, `weft help [CMD...]`, and -h/--help anywhere before a `--` (after it, the arguments are another program's).
  const sep = argv.indexOf('--');
  const head = sep < 0 ? argv : argv.slice(0, sep);
  if (argv.length === 0 || argv[0] === 'help') {
    const words = argv.slice(1);
    const end = words.findIndex((a) => a.startsWith('-'));
    return printHelp(findCommand(end < 0 ? words : words.slice(0, end)).node, head);
  }
  if (head.includes('--help') || head.includes('-h')) {
    return printHelp(head[0]!.startsWith('-') ? ROOT : findCommand(head.filter((a) => a !== '--help' && a !== '-h')).node, head);
  }
  const { node, rest } = findCommand(argv);
  const entry = node.entry;
  if (!entry) throw needsCommand(node);
  const handler = await HANDLERS[entry.id]();
  await handler(rest);
}

async function printHelp(node: CommandNode, args: readonly string[]): Promise<void> {
  const { helpJson, helpText } = await import('./help.js');
  if (wantsJson(args)) printJson(helpJson(node));
  else process.stdout.write(helpText(node));
}

/** `-o json` (or -ojson, --output json, --output=json) among the arguments. */
function wantsJson(args: readonly string[]): boolean {
  return args.some((a, i) => ((a === '-o' || a === '--output') && args[i + 1] === 'json') || a === '-ojson' || a === '--output=json' || a === '-o=json');
}

main(process.argv.slice(2)).catch(exitOnError);
