/**
 * EndpointOwnership: which endpoint record stands for an IP. A node publishes its endpoints under
 * its own prefix (`endpoints/<node>/<ip>`, writable only by that node when etcd RBAC is on), but a
 * node can still claim any IP there. So a record counts only when
 *   - its key, its `node` and its `ip` agree,
 *   - its node has a node record (a record of a node that does not exist is nobody's),
 *   - its IP lies inside that node's podCidr, and its `nodeIp` is that node's address,
 *   - and no other node has a valid claim on the same IP (two valid claims: overlapping pod
 *     CIDRs, someone lies; neither is used, both are reported: fail closed).
 * Everything else is rejected with a reason, and re-evaluated when the node records it depends on
 * change (an endpoint seen before its node's record becomes valid when the node appears).
 *
 * Used by the agent's ClusterState for its own cluster and by the clustermesh exporter, so
 * nothing that fails here is ever programmed or exported. Work per event is proportional to the
 * IPs of the node or endpoint that changed.
 */
import { parseCidr, parseIpv4, type Cidr } from '@weft/policy';
import type { EndpointRecord, NodeRecord } from './state.js';

interface NodePlace {
  ip: string;
  cidr: Cidr;
  podCidr: string;
}

export interface EndpointOwnershipEvents {
  /** The record standing for `ip` changed (undefined: none does any more). */
  onChange(ip: string, record: EndpointRecord | undefined): void;
  /** The record under (`node`, `ip`) was rejected for `reason`, or (undefined) is no longer rejected. */
  onReject(node: string, ip: string, reason: string | undefined): void;
}

export class EndpointOwnership {
  private readonly nodes = new Map<string, NodePlace>();
  /** ip -> node -> the record that node published for it. */
  private readonly claims = new Map<string, Map<string, EndpointRecord>>();
  /** node -> the IPs it published. */
  private readonly byNode = new Map<string, Set<string>>();
  /** ip -> the record standing for it. */
  readonly accepted = new Map<string, EndpointRecord>();
  /** `<node>/<ip>` -> why that node's record for that IP is not used. */
  readonly rejected = new Map<string, string>();

  constructor(private readonly events: EndpointOwnershipEvents) {}

  /** A node record appeared, changed (undefined: went away). Re-evaluates that node's endpoints. */
  setNode(name: string, record: Pick<NodeRecord, 'ip' | 'podCidr'> | undefined): void {
    const before = this.nodes.get(name);
    if (record === undefined) {
      if (!before) return;
      this.nodes.delete(name);
    } else {
      if (before && before.ip === record.ip && before.podCidr === record.podCidr) return;
      const cidr = parseCidr(record.podCidr);
      // Node records are validated before they get here; a bad CIDR makes the node own nothing.
      if (typeof cidr === 'string') this.nodes.delete(name);
      else this.nodes.set(name, { ip: record.ip, cidr, podCidr: record.podCidr });
    }
    for (const ip of this.byNode.get(name) ?? []) this.evaluate(ip);
  }

  /** The record `node` published for `ip` (undefined: deleted). `record` is parsed, not yet checked. */
  setEndpoint(node: string, ip: string, record: EndpointRecord | undefined): void {
    if (record === undefined) {
      const claims = this.claims.get(ip);
      if (!claims?.delete(node)) {
        this.setRejected(node, ip, undefined);
        return;
      }
      if (claims.size === 0) this.claims.delete(ip);
      const ips = this.byNode.get(node)!;
      ips.delete(ip);
      if (ips.size === 0) this.byNode.delete(node);
      this.setRejected(node, ip, undefined);
    } else {
      let claims = this.claims.get(ip);
      if (!claims) this.claims.set(ip, (claims = new Map()));
      claims.set(node, record);
      let ips = this.byNode.get(node);
      if (!ips) this.byNode.set(node, (ips = new Set()));
      ips.add(ip);
    }
    this.evaluate(ip);
  }

  /** Why `node`'s record for `ip` cannot stand for it, or undefined when it can. */
  private problem(node: string, ip: string, r: EndpointRecord): string | undefined {
    if (r.node !== node) return `record names node ${JSON.stringify(r.node)} but is published under node ${node}`;
    if (r.ip !== ip) return `record ip ${r.ip} does not match its key`;
    const place = this.nodes.get(node);
    if (!place) return `node ${node} has no node record`;
    const addr = parseIpv4(ip);
    if (addr === undefined || !inCidr(addr, place.cidr)) return `ip ${ip} is outside podCidr ${place.podCidr} of node ${node}`;
    if (r.nodeIp !== place.ip) return `nodeIp ${r.nodeIp} is not the address ${place.ip} of node ${node}`;
    return undefined;
  }

  private evaluate(ip: string): void {
    const claims = this.claims.get(ip);
    const valid: Array<[string, EndpointRecord]> = [];
    for (const [node, r] of claims ?? []) {
      const problem = this.problem(node, ip, r);
      if (problem === undefined) valid.push([node, r]);
      else this.setRejected(node, ip, problem);
    }
    let winner: EndpointRecord | undefined;
    if (valid.length === 1) {
      winner = valid[0]![1];
      this.setRejected(valid[0]![0], ip, undefined);
    } else if (valid.length > 1) {
      const names = valid.map(([n]) => n).sort().join(', ');
      for (const [node] of valid) this.setRejected(node, ip, `ip ${ip} is claimed by nodes ${names}, whose pod CIDRs all hold it: none is used`);
    }
    const before = this.accepted.get(ip);
    if (winner === before) return;
    if (winner) this.accepted.set(ip, winner);
    else this.accepted.delete(ip);
    this.events.onChange(ip, winner);
  }

  private setRejected(node: string, ip: string, reason: string | undefined): void {
    const key = `${node}/${ip}`;
    if (reason === undefined) {
      if (!this.rejected.delete(key)) return;
    } else {
      if (this.rejected.get(key) === reason) return;
      this.rejected.set(key, reason);
    }
    this.events.onReject(node, ip, reason);
  }
}

function inCidr(addr: number, cidr: Cidr): boolean {
  const mask = cidr.bits === 0 ? 0 : (0xffffffff << (32 - cidr.bits)) >>> 0;
  return ((addr & mask) >>> 0) === cidr.addr;
}
