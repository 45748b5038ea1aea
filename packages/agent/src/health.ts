/**
 * The agent's health (`GET /v1/healthz`, `weft agent health`): a pure function
 * of what the agent already tracks, so a probe costs no etcd or API server
 * round trip. Ready when start() has finished (datapath loaded, encryption
 * started, endpoints restored), the etcd session's lease is kept alive, and the
 * resource source's initial lists are done.
 */
import { healthReport, type HealthReport } from '@weft/common';
import type { SessionState } from '@weft/kvstore';
import type { EncryptionMode, SourceMode } from './config.js';

export interface AgentHealthState {
  /** The start step in progress; undefined once start() has finished. */
  starting: string | undefined;
  encryption: EncryptionMode;
  /** The agent's etcd session; undefined until the first one is granted. */
  session: { state: SessionState; leaseId: string; ttlSeconds: number } | undefined;
  source: SourceMode;
  /** The resource source has delivered its initial lists (policies, Services, EndpointSlices). */
  resourcesSynced: boolean;
}

export function agentHealth(s: AgentHealthState): HealthReport {
  const session = s.session;
  const from = s.source === 'kubernetes' ? 'the Kubernetes API server' : 'etcd';
  return healthReport([
    {
      name: 'started',
      ok: s.starting === undefined,
      detail: s.starting ?? `datapath loaded, encryption ${s.encryption === 'off' ? 'off' : `${s.encryption} started`}`,
    },
    {
      name: 'kvstore',
      ok: session?.state === 'active',
      detail: !session
        ? 'no etcd session yet'
        : session.state === 'active'
          ? `etcd lease ${session.leaseId} kept alive (ttl ${session.ttlSeconds}s)`
          : session.state === 'lost'
            ? `etcd lease ${session.leaseId} lost (no keep-alive answered); renewing`
            : `etcd session ${session.state}`,
    },
    {
      name: 'resources',
      ok: s.resourcesSynced,
      detail: s.resourcesSynced ? `policies and Services listed from ${from}` : `waiting for the initial lists of policies and Services from ${from}`,
    },
  ]);
}
