/**
 * EndpointSlices to what a Service needs from them: the set of its ready
 * IPv4 addresses (conditions.ready unset counts as ready, as the API says).
 * A Service's endpoints may be spread over several slices; the index keeps
 * each slice's part and reports the union per Service whenever a part
 * changes. Slices of other address families, or without the
 * kubernetes.io/service-name label, belong to no Service Weft programs.
 */
import { resourceKey, type ServiceEndpointsHandler } from '@weft/resources';
import type { KubeObject } from './types.js';

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

interface SlicePart {
  service: string;
  ready: string[];
}

interface EndpointSlice {
  addressType?: string;
  endpoints?: Array<{ addresses?: unknown; conditions?: { ready?: boolean | null } }> | null;
}

export class EndpointSliceIndex {
  private readonly slices = new Map<string, SlicePart>();
  private readonly byService = new Map<string, Set<string>>();

  constructor(private readonly handler: ServiceEndpointsHandler) {}

  onEvent(type: 'upsert' | 'delete', obj: KubeObject): void {
    const ns = obj.metadata?.namespace ?? '';
    const sliceKey = `${ns}/${obj.metadata?.name ?? ''}`;
    const before = this.slices.get(sliceKey)?.service;
    const part = type === 'upsert' ? slicePart(ns, obj) : undefined;
    if (before !== undefined) {
      this.slices.delete(sliceKey);
      this.byService.get(before)?.delete(sliceKey);
    }
    if (part) {
      this.slices.set(sliceKey, part);
      let set = this.byService.get(part.service);
      if (!set) this.byService.set(part.service, (set = new Set()));
      set.add(sliceKey);
    }
    if (before !== undefined && before !== part?.service) this.report(before);
    if (part) this.report(part.service);
  }

  private report(service: string): void {
    const keys = this.byService.get(service);
    if (!keys || keys.size === 0) {
      this.byService.delete(service);
      return this.handler.onChange(service, undefined);
    }
    const ready = new Set<string>();
    for (const k of keys) for (const ip of this.slices.get(k)!.ready) ready.add(ip);
    this.handler.onChange(service, ready);
  }
}

function slicePart(namespace: string, obj: KubeObject): SlicePart | undefined {
  const name = obj.metadata?.labels?.[SERVICE_NAME_LABEL];
  const s = obj as EndpointSlice;
  if (!name || s.addressType !== 'IPv4') return undefined;
  const ready: string[] = [];
  for (const e of s.endpoints ?? []) {
    if (e?.conditions?.ready === false || !Array.isArray(e.addresses)) continue;
    for (const a of e.addresses) if (typeof a === 'string' && IPV4.test(a)) ready.push(a);
  }
  return { service: resourceKey({ kind: 'Service', metadata: { namespace, name } }), ready };
}
