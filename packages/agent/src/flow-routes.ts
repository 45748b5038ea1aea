/** The flow API: recent flows and a live feed (GET /v1/flows, newline-delimited JSON), filtered. */
import { bigintJson, type ApiServer } from './api.js';
import { flowMatches, type FlowFilter, type FlowLog } from './flows.js';

export function flowRoutes(api: ApiServer, flows: FlowLog): void {
  api.route('GET', '/v1/flows', async ({ query }, res) => {
    const filter: FlowFilter = {};
    for (const k of ['pod', 'namespace', 'label', 'verdict'] as const) {
      const v = query.get(k);
      if (v) filter[k] = v;
    }
    if (query.get('identity')) filter.identity = Number(query.get('identity'));
    const limit = Number(query.get('limit') ?? 100);
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    for (const f of flows.recent(filter, limit)) res.write(JSON.stringify(f, bigintJson) + '\n');
    if (query.get('follow') !== '1') return void res.end();
    const unfollow = flows.follow((f) => {
      if (flowMatches(f, filter)) res.write(JSON.stringify(f, bigintJson) + '\n');
    });
    res.on('close', unfollow);
    return undefined;
  });
}
