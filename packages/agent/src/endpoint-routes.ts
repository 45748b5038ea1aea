/**
 * The endpoint API: CNI requests (POST /v1/cni), the node's endpoints with their identity, policy
 * and regeneration state (GET /v1/endpoints), the policies in force and an endpoint's BPF policy
 * map (GET /v1/policies, /v1/bpf/policy).
 */
import { ApiError, type ApiServer } from './api.js';
import type { CniArgs } from './cni-args.js';
import type { Datapath } from './datapath-port.js';
import type { Endpoint, EndpointManager } from './endpoint-manager.js';
import type { PolicyEngine } from './policy-engine.js';

export interface EndpointParts {
  endpoints: EndpointManager;
  policy: PolicyEngine;
  datapath: Datapath;
  /** The CNI entry point (Agent.cni): checks the request, then ADD, DEL or CHECK. */
  cni(command: string, args: CniArgs): Promise<unknown>;
}

export function endpointRoutes(api: ApiServer, p: EndpointParts): void {
  api.route('POST', '/v1/cni', async ({ body }) => {
    const b = body as { command?: string; args?: CniArgs };
    if (!b?.command || !b.args) throw new ApiError(400, 'WEFT_ERR_BAD_REQUEST', 'Expected {command, args}');
    return p.cni(b.command, b.args);
  });
  api.route('GET', '/v1/endpoints', async (): Promise<EndpointView[]> => p.endpoints.list().map((ep) => endpointView(ep, p.policy)));
  api.route('GET', '/v1/policies', async () => p.policy.listPolicies());
  api.route('GET', '/v1/bpf/policy', async ({ query }): Promise<PolicyMapDump> => {
    const ep = p.endpoints.find(query.get('endpoint') ?? '');
    const entries = await p.datapath.dumpPolicy(ep.epId);
    return { endpoint: { id: ep.epId, namespace: ep.namespace, pod: ep.pod }, entries: entries.map((e) => ({ ...e, rule: p.policy.ruleName(e.ruleId) })) };
  });
}

/** GET /v1/endpoints, one element. */
export type EndpointView = ReturnType<typeof endpointView>;

/** GET /v1/bpf/policy. */
export interface PolicyMapDump {
  endpoint: { id: number; namespace: string; pod: string };
  entries: Array<Awaited<ReturnType<Datapath['dumpPolicy']>>[number] & { rule: string | undefined }>;
}

function endpointView(ep: Endpoint, policy: PolicyEngine) {
  const p = policy.endpointState(ep.epId);
  return {
    id: ep.epId,
    namespace: ep.namespace,
    pod: ep.pod,
    ip: ep.ip,
    identity: ep.identity,
    labels: ep.labels,
    namespaceLabels: ep.namespaceLabels,
    interface: ep.hostIf,
    // The last label change put in force (or being put, or failed and retried), if any.
    regeneration: ep.regeneration,
    policy: p
      ? {
          ingress: p.ingressEnforced ? 'enforcing' : 'allow-all',
          egress: p.egressEnforced ? 'enforcing' : 'allow-all',
          audit: p.audit,
          revision: p.rev,
          entries: p.entries,
          policies: p.policies,
          // ok | stale (old policy in force, new grants missing) | fail-closed (all traffic dropped) | error
          state: p.state,
          ...(p.error !== undefined ? { error: p.error, since: p.since } : {}),
        }
      : undefined,
  };
}
