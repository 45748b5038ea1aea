/**
 * kube-proxy's job for the host network of a lab node: processes in the node's namespace (the
 * chart's host-network pods: the agent reaching etcd at its fixed ClusterIP, anything reaching the
 * `kubernetes` Service) connect to a Service's ClusterIP and are DNATed to one of its ready
 * endpoints, chosen at random per connection, as kube-proxy's iptables mode does. A NodePort
 * answers on every address of every node: what arrives at a node's own address on that port is
 * DNATed the same way and, when it goes on to another node, masqueraded so the answer comes back
 * through the node it was sent to (kube-proxy's externalTrafficPolicy Cluster). Pods' own traffic to
 * ClusterIPs is Weft's datapath's (BPF), not this: the ClusterIP rules see only the node's own
 * processes (nat OUTPUT). Real iptables in the node's namespace, in chains of their own
 * (WEFT-LAB-SERVICES, WEFT-LAB-NODEPORTS, WEFT-LAB-POSTROUTING), rewritten whole on every change.
 */
import { isIPv4 } from 'node:net';
import { NetCommandError, run } from '@weft/net';

export const SERVICES_CHAIN = 'WEFT-LAB-SERVICES';
export const NODEPORTS_CHAIN = 'WEFT-LAB-NODEPORTS';
export const POSTROUTING_CHAIN = 'WEFT-LAB-POSTROUTING';

export interface KubeServiceView {
  metadata: { name: string; namespace: string };
  spec: { clusterIP?: string; ports?: { name?: string; port: number; protocol?: string; nodePort?: number }[] };
}
export interface EndpointSliceView {
  metadata: { namespace: string; labels?: Record<string, string> };
  addressType?: string;
  ports?: { name?: string; port?: number; protocol?: string }[] | null;
  endpoints?: { addresses: string[]; conditions?: { ready?: boolean | null } }[] | null;
}

export interface ServiceRule {
  service: string;
  clusterIp: string;
  port: number;
  protocol: 'tcp' | 'udp';
  nodePort?: number;
  endpoints: { ip: string; port: number }[];
}

/** Each ClusterIP port of each Service, with the ready IPv4 endpoints its EndpointSlices give it (matched by port name). */
export function serviceRules(services: KubeServiceView[], slices: EndpointSliceView[]): ServiceRule[] {
  const rules: ServiceRule[] = [];
  for (const svc of services) {
    const ip = svc.spec.clusterIP;
    if (!ip || !isIPv4(ip)) continue;
    const mine = slices.filter((s) => s.metadata.namespace === svc.metadata.namespace && s.metadata.labels?.['kubernetes.io/service-name'] === svc.metadata.name && (s.addressType ?? 'IPv4') === 'IPv4');
    for (const p of svc.spec.ports ?? []) {
      const protocol = (p.protocol ?? 'TCP').toLowerCase();
      if (protocol !== 'tcp' && protocol !== 'udp') continue;
      const endpoints: ServiceRule['endpoints'] = [];
      for (const slice of mine) {
        const target = (slice.ports ?? []).find((sp) => (sp.name ?? '') === (p.name ?? '') && (sp.protocol ?? 'TCP').toLowerCase() === protocol);
        if (!target?.port) continue;
        for (const e of slice.endpoints ?? []) {
          if (e.conditions?.ready === false) continue;
          for (const a of e.addresses) if (isIPv4(a)) endpoints.push({ ip: a, port: target.port });
        }
      }
      endpoints.sort((a, b) => `${a.ip}:${a.port}`.localeCompare(`${b.ip}:${b.port}`));
      rules.push({ service: `${svc.metadata.namespace}/${svc.metadata.name}:${p.name ?? p.port}`, clusterIp: ip, port: p.port, protocol, ...(p.nodePort ? { nodePort: p.nodePort } : {}), endpoints });
    }
  }
  return rules.sort((a, b) => a.service.localeCompare(b.service));
}

/**
 * The iptables-restore input that replaces the chain's rules. One endpoint of n is picked per
 * connection: the i-th rule matches with probability 1/(n-i), as kube-proxy writes it. A Service
 * without a ready endpoint is rejected at once rather than left to time out.
 */
export function restoreInput(rules: ServiceRule[]): string {
  const lines = ['*nat', ...[SERVICES_CHAIN, NODEPORTS_CHAIN, POSTROUTING_CHAIN].map((c) => `:${c} - [0:0]`)];
  const dnat = (match: string, endpoints: ServiceRule['endpoints']): void => {
    endpoints.forEach((e, i) => {
      const left = endpoints.length - i;
      const pick = left > 1 ? ` -m statistic --mode random --probability ${(1 / left).toFixed(10)}` : '';
      lines.push(`${match}${pick} -j DNAT --to-destination ${e.ip}:${e.port}`);
    });
  };
  for (const r of rules) dnat(`-A ${SERVICES_CHAIN} -d ${r.clusterIp}/32 -p ${r.protocol} --dport ${r.port} -m comment --comment "${r.service}"`, r.endpoints);
  for (const r of rules.filter((x) => x.nodePort && x.endpoints.length > 0)) {
    dnat(`-A ${NODEPORTS_CHAIN} -p ${r.protocol} --dport ${r.nodePort} -m comment --comment "${r.service} nodePort"`, r.endpoints);
    lines.push(`-A ${POSTROUTING_CHAIN} -p ${r.protocol} -m conntrack --ctstate DNAT --ctorigdstport ${r.nodePort} -m comment --comment "${r.service} nodePort" -j MASQUERADE`);
  }
  lines.push('COMMIT');
  const filter = ['*filter', `:${SERVICES_CHAIN} - [0:0]`];
  for (const r of rules.filter((x) => x.endpoints.length === 0)) {
    filter.push(`-A ${SERVICES_CHAIN} -d ${r.clusterIp}/32 -p ${r.protocol} --dport ${r.port} -m comment --comment "${r.service} has no endpoints" -j REJECT`);
  }
  filter.push('COMMIT');
  return `${[...lines, ...filter].join('\n')}\n`;
}

/** The jumps into the chains: table, built-in chain, and the rule's match and target. */
export const JUMPS: Array<[string, string, string[]]> = [
  ['nat', 'OUTPUT', ['-j', SERVICES_CHAIN]],
  ['nat', 'OUTPUT', ['-m', 'addrtype', '--dst-type', 'LOCAL', '-j', NODEPORTS_CHAIN]],
  ['nat', 'PREROUTING', ['-m', 'addrtype', '--dst-type', 'LOCAL', '-j', NODEPORTS_CHAIN]],
  ['nat', 'POSTROUTING', ['-j', POSTROUTING_CHAIN]],
  ['filter', 'OUTPUT', ['-j', SERVICES_CHAIN]],
];

/** Writes the rules into network namespace `netns` (the chains first, then the jumps, once). */
export async function applyServiceRules(netns: string, rules: ServiceRule[]): Promise<void> {
  const inNs = (args: string[], input?: string) => run(['ip', 'netns', 'exec', netns, ...args], input !== undefined ? { input } : {});
  await inNs(['iptables-restore', '--noflush', '-w'], restoreInput(rules));
  for (const [table, chain, rule] of JUMPS) {
    try {
      await inNs(['iptables', '-w', '-t', table, '-C', chain, ...rule]);
    } catch (err) {
      // -C answers "absent" with a failure: the jump is added, once.
      if (!(err instanceof NetCommandError)) throw err;
      await inNs(['iptables', '-w', '-t', table, '-I', chain, '1', ...rule]);
    }
  }
}
