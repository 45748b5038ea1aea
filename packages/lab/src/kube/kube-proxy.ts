/**
 * `weft lab kube-proxy`: the Services of a lab node's host network, as kube-proxy's iptables mode
 * does it beside a real kubelet (service-proxy.ts holds the rules): ClusterIPs from the node's
 * processes, NodePorts on every node's address. It runs in the node's network namespace with
 * kube-proxy's credential (system:kube-proxy; a node's own may not list EndpointSlices).
 */
import { AbortedError, sleep, type Logger } from '@weft/common';
import { KubeApi, KubeApiError } from './api.js';
import { applyServiceRules, serviceRules, type EndpointSliceView, type KubeServiceView } from './service-proxy.js';

export interface Loop {
  log: Logger;
  signal: AbortSignal;
}

/** Keeps the node's Service rules in step with the cluster's Services and EndpointSlices until aborted. */
export async function syncServices(proxy: { netns: string; kubeconfig: string }, o: Loop, ms = 2_000): Promise<void> {
  const api = KubeApi.fromKubeconfig(proxy.kubeconfig);
  const { netns } = proxy;
  let last = '';
  await every(ms, o, 'service sync', async () => {
    const svcs = await api.expect<{ items: KubeServiceView[] }>([200], 'GET', '/api/v1/services');
    const slices = await api.expect<{ items: EndpointSliceView[] }>([200], 'GET', '/apis/discovery.k8s.io/v1/endpointslices');
    const rules = serviceRules(svcs.body!.items, slices.body!.items);
    const text = JSON.stringify(rules);
    if (text === last) return;
    await applyServiceRules(netns, rules);
    last = text;
    o.log.info({ services: rules.length }, 'service rules applied');
  }).finally(() => api.close());
}

/** Runs `step` every `ms` until aborted; a refusal or silence of the API server is logged and retried. */
async function every(ms: number, o: Loop, what: string, step: () => Promise<void>): Promise<void> {
  while (!o.signal.aborted) {
    try {
      await step();
    } catch (err) {
      if (!(err instanceof KubeApiError)) throw err;
      o.log.warn({ err: err.message, status: err.status }, `${what} failed; retrying`);
    }
    try {
      await sleep(ms, o.signal);
    } catch (err) {
      // Stopped: the loop ends.
      if (!(err instanceof AbortedError)) throw err;
    }
  }
}
