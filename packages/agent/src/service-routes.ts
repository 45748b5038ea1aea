/**
 * The service API: each Service's frontends and backends (GET /v1/services), the BPF service map
 * (GET /v1/bpf/lb), and a full resync on demand (POST /v1/services/resync, run in the background):
 * changes are normally applied one by one, and this resolves every service again from
 * ClusterState, the way back should the manager's indexes ever drift from it.
 */
import type { ApiServer } from './api.js';
import type { Datapath } from './datapath-port.js';
import type { ServiceManager } from './service-manager.js';

export function serviceRoutes(api: ApiServer, p: { services: ServiceManager; datapath: Datapath }): void {
  api.route('GET', '/v1/services', async () => p.services.list());
  api.route('GET', '/v1/bpf/lb', async () => p.datapath.dumpServices());
  api.route('POST', '/v1/services/resync', async () => {
    p.services.resync();
    return { scheduled: true };
  });
}
