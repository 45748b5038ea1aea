/**
 * PolicyMapWriter: programs a local endpoint's weft_endpoints entry together
 * with its weft_policy_v2 entries, so that a full map (or any failed write)
 * never leaves a policy more open than the one asked for.
 *
 * Each endpoint's entries carry a generation (policy_key.gen) and its
 * endpoint entry says which generation is in force (EP_F_POLICY_GEN). A change
 * is applied one of two ways:
 *
 * - Grant-only (it only adds allows, removes denies, turns a deny into an
 *   allow, stops enforcing a direction or turns audit on): in place, in the
 *   generation in force, differences only. Every state in between allows no
 *   more than the new policy and no less than the old one, so this needs no
 *   flip. If the new entries do not fit, they are removed again and the old
 *   policy (minus the removed denies) stays in force: the endpoint is `stale`,
 *   missing only access it never had. This is the common change (a new
 *   identity a selector matches) and it costs room for the new entries only.
 * - Anything that takes access away (a new deny, a removed allow, enforcement
 *   or audit-off), a fail-closed endpoint and a new one: the whole new policy
 *   is written under the other generation, then the endpoint entry flips to it
 *   with the new revision in one map update (established connections are
 *   re-checked against it), then the old generation is deleted. If the new
 *   generation does not fit, what was written of it is deleted and the
 *   endpoint is put into EP_F_FAIL_CLOSED (every packet dropped and reported):
 *   keeping the old policy would keep access the new one revokes. Its old
 *   entries are then deleted (they are of no use to a fail-closed endpoint)
 *   and the new policy is tried once more in the room that freed; if it fits,
 *   the endpoint flips to it and leaves the fail-closed state at once.
 *
 * update() takes the differences alone (the policy engine's per-rule updates:
 * an identity added or removed) and encodes only those entries. It also keeps
 * in place a change that only deletes allows or turns allows into denies:
 * those never need room, and done before any grant they leave every state in
 * between within both policies; the endpoint's new revision then re-checks
 * established connections as a flip would. A new deny still takes the flip.
 *
 * The classification needs the old policy to satisfy the policy resolver's
 * invariant (no allow entry covered by a deny of the same identity, so a deny
 * wins whenever one matches): then allows and denies act as sets, and adding
 * an allow can only grant, adding a deny can only revoke.
 *
 * The writer mirrors what it wrote; load() rebuilds the mirror from the maps
 * after a restart and deletes entries no endpoint uses (the generation not in
 * force, endpoints that are gone), which only a crash in the middle leaves.
 */
import type { Logger } from '@weft/common';
import {
  BpfSyscallError,
  decodeEndpoint,
  decodePolicy,
  encodeEndpointInfo,
  encodeEndpointKey,
  encodePolicyKey,
  encodePolicyValue,
  EP_F_AUDIT,
  EP_F_EGRESS_ENFORCE,
  EP_F_FAIL_CLOSED,
  EP_F_INGRESS_ENFORCE,
  EP_F_POLICY_GEN,
  intToIpv4,
  MapName,
  POLICY_KEY,
  POLICY_VALUE,
  SIZED_MAPS,
  type BpfMap,
  type SizedMap,
} from '@weft/datapath';
import type { EndpointPolicyOutcome, PolicyMapChanges, PolicyMapEntry } from './datapath-port.js';
import { EndpointProgramError, MapFullError } from './errors.js';

/** What an endpoint's datapath entry says, besides its policy. */
export interface EndpointSlot {
  epId: number;
  /** IPv4 as an unsigned integer. */
  ip: number;
  ifindex: number;
  identity: number;
  mac: string;
  nodeMac: string;
  ingressEnforced: boolean;
  egressEnforced: boolean;
  audit: boolean;
}

interface Programmed {
  ip: number;
  gen: number;
  failClosed: boolean;
  ingressEnforced: boolean;
  egressEnforced: boolean;
  audit: boolean;
  /** The entries in force: key with gen 0 (hex) -> value head (deny + rule id, hex). */
  entries: Map<string, string>;
}

const KEY = POLICY_KEY.size;
const VALUE = POLICY_VALUE.size;
const GEN_OFF = POLICY_KEY.offsets.gen!;
const DENY_OFF = POLICY_VALUE.offsets.deny!;
const HEAD = 8;

export class PolicyMapWriter {
  private readonly programmed = new Map<number, Programmed>();

  constructor(
    private readonly maps: { endpoints: BpfMap; policy: BpfMap },
    private readonly log: Logger,
  ) {}

  /** Endpoints with an entry written by this writer (or found at load). */
  get endpointCount(): number {
    return this.programmed.size;
  }

  /** Policy entries in force, over every endpoint. */
  get entryCount(): number {
    let n = 0;
    for (const p of this.programmed.values()) n += p.entries.size;
    return n;
  }

  /** The generation in force for an endpoint (dumps show only that one). */
  generation(epId: number): number | undefined {
    return this.programmed.get(epId)?.gen;
  }

  /** Rebuilds the mirror from the maps and deletes the entries no endpoint looks up. */
  load(): { endpoints: number; entries: number; orphans: number } {
    for (const [k, v] of this.maps.endpoints.entries()) {
      const e = decodeEndpoint(k, v);
      this.programmed.set(e.epId, {
        ip: e.ip,
        gen: e.flags & EP_F_POLICY_GEN ? 1 : 0,
        failClosed: (e.flags & EP_F_FAIL_CLOSED) !== 0,
        ingressEnforced: (e.flags & EP_F_INGRESS_ENFORCE) !== 0,
        egressEnforced: (e.flags & EP_F_EGRESS_ENFORCE) !== 0,
        audit: (e.flags & EP_F_AUDIT) !== 0,
        entries: new Map(),
      });
    }
    const orphans: Buffer[] = [];
    for (const [k, v] of this.maps.policy.entries()) {
      const p = decodePolicy(k, v);
      const ep = this.programmed.get(p.epId);
      if (!ep || ep.gen !== p.gen) {
        orphans.push(k);
        continue;
      }
      ep.entries.set(genless(k), v.subarray(0, HEAD).toString('hex'));
    }
    if (orphans.length > 0) this.maps.policy.deleteBatch(Buffer.concat(orphans), orphans.length);
    return { endpoints: this.programmed.size, entries: this.entryCount, orphans: orphans.length };
  }

  /**
   * Programs an endpoint: its entry and its policy `entries`, under revision `rev`. Never throws
   * for a full policy map (the outcome says what is in force); throws when the endpoint entry
   * itself cannot be created (a full weft_endpoints: the endpoint has no entry, so its traffic is
   * dropped as from or to an unknown endpoint).
   */
  program(slot: EndpointSlot, entries: readonly PolicyMapEntry[], rev: number): EndpointPolicyOutcome {
    const want = encodeEntries(slot.epId, entries);
    const cur = this.programmed.get(slot.epId);
    if (cur && cur.ip !== slot.ip) throw new EndpointProgramError('program', String(slot.epId), 'it is programmed with another address (remove it first)');
    if (cur && !cur.failClosed && !revokes(cur, want, slot)) return this.inPlace(cur, slot, want, rev);
    return this.flip(cur, slot, want, rev);
  }

  /**
   * Applies differences to an endpoint's policy in force (what the engine's per-rule updates
   * give): only the entries named are encoded and written, under revision `rev`. Outcomes as for
   * program(). Unlike program(), a change that only takes access away by deleting allows or
   * turning them into denies stays in place too: deletes and overwrites never need room, so it
   * cannot half-fail for a full map (see inPlaceDiff for the order that keeps every state in
   * between no more open than the old policy, and no more open than the new one once the
   * revocations are done). A new deny needs room: it, new enforcement, audit turned off and a
   * fail-closed endpoint take the flip, which writes the whole policy under the other generation.
   */
  update(slot: EndpointSlot, changes: PolicyMapChanges, rev: number): EndpointPolicyOutcome {
    const cur = this.programmed.get(slot.epId);
    if (cur && cur.ip !== slot.ip) throw new EndpointProgramError('update the policy of', String(slot.epId), 'it is programmed with another address (remove it first)');
    const upsert = encodeEntries(slot.epId, changes.upsert);
    const remove = [...encodeEntries(slot.epId, changes.remove).keys()].filter((k) => !upsert.has(k));
    if (cur && !cur.failClosed && !flagsRevoke(cur, slot) && ![...upsert].some(([k, v]) => v[DENY_OFF] === 1 && !cur.entries.has(k))) {
      const outcome = this.inPlaceDiff(cur, slot, upsert, remove, rev);
      if (outcome) return outcome;
    }
    const want = new Map<string, Buffer>();
    for (const [k, head] of cur?.entries ?? []) {
      const v = Buffer.alloc(VALUE);
      v.write(head, 0, 'hex');
      want.set(k, v);
    }
    for (const k of remove) want.delete(k);
    for (const [k, v] of upsert) want.set(k, v);
    return this.flip(cur, slot, want, rev);
  }

  /**
   * In place, in three steps: (1) the revocations, deleting allows and overwriting allows with
   * denies, so the policy in force is within both the old and the new one; (2) the grants that
   * need no room (denies deleted, denies turned into allows, rule ids changed); (3) the new
   * allows, which need room: if they do not fit they are removed again and the endpoint is
   * `stale`, missing only access it never had. Undefined when step 1 failed: some revoked allow
   * may still be there, so the caller flips (or fails closed) instead.
   */
  private inPlaceDiff(cur: Programmed, slot: EndpointSlot, upsert: Map<string, Buffer>, remove: readonly string[], rev: number): EndpointPolicyOutcome | undefined {
    const isDeny = (head: string): boolean => Buffer.from(head, 'hex')[DENY_OFF] === 1;
    const headOf = (k: string): string => upsert.get(k)!.subarray(0, HEAD).toString('hex');
    const revokeDelete: string[] = [];
    const grantDelete: string[] = [];
    for (const k of remove) {
      const head = cur.entries.get(k);
      if (head === undefined) continue; // not in force (a stale endpoint's missing allow): nothing to delete
      (isDeny(head) ? grantDelete : revokeDelete).push(k);
    }
    const revokeWrite: string[] = [];
    const grantWrite: string[] = [];
    const added: string[] = [];
    for (const [k, v] of upsert) {
      const head = cur.entries.get(k);
      if (head === undefined) added.push(k);
      else if (head !== headOf(k)) (v[DENY_OFF] === 1 && !isDeny(head) ? revokeWrite : grantWrite).push(k);
    }
    try {
      this.deleteKeys(revokeDelete, cur.gen);
      this.writeKeys(revokeWrite, upsert, cur.gen);
    } catch (err) {
      this.log.warn({ ep: slot.epId, err: (err as Error).message }, 'cannot revoke policy entries in place: writing the whole policy under the other generation');
      return undefined;
    }
    for (const k of revokeDelete) cur.entries.delete(k);
    for (const k of revokeWrite) cur.entries.set(k, headOf(k));
    this.deleteKeys(grantDelete, cur.gen);
    for (const k of grantDelete) cur.entries.delete(k);
    this.writeKeys(grantWrite, upsert, cur.gen);
    for (const k of grantWrite) cur.entries.set(k, headOf(k));
    let error: string | undefined;
    try {
      this.writeKeys(added, upsert, cur.gen);
      for (const k of added) cur.entries.set(k, headOf(k));
    } catch (err) {
      this.deleteKeys(added, cur.gen);
      error = why(err, this.maps.policy, added.length);
    }
    this.writeEndpoint(slot, cur.gen, false, rev);
    Object.assign(cur, { ingressEnforced: slot.ingressEnforced, egressEnforced: slot.egressEnforced, audit: slot.audit });
    const changes = revokeDelete.length + revokeWrite.length + grantDelete.length + grantWrite.length + (error ? 0 : added.length);
    if (error) return { state: 'stale', changes, error: `the policy stays in force without ${added.length} new allow entries (they only grant access): ${error}`, gen: cur.gen };
    return { state: 'ok', changes, gen: cur.gen };
  }

  /** Removes the endpoint's entry (its traffic drops from now on) and then its policy. */
  remove(ip: number, epId: number): void {
    this.maps.endpoints.delete(encodeEndpointKey(ip));
    const cur = this.programmed.get(epId);
    if (cur) this.deleteKeys([...cur.entries.keys()], cur.gen);
    this.programmed.delete(epId);
  }

  private inPlace(cur: Programmed, slot: EndpointSlot, want: Map<string, Buffer>, rev: number): EndpointPolicyOutcome {
    const removed = [...cur.entries.keys()].filter((k) => !want.has(k));
    const changed: string[] = [];
    const added: string[] = [];
    for (const [k, v] of want) {
      const head = cur.entries.get(k);
      if (head === undefined) added.push(k);
      else if (head !== v.subarray(0, HEAD).toString('hex')) changed.push(k);
    }
    // Removed denies first: room for the new allows.
    this.deleteKeys(removed, cur.gen);
    for (const k of removed) cur.entries.delete(k);
    // Changed entries overwrite existing ones, which never needs room.
    this.writeKeys(changed, want, cur.gen);
    for (const k of changed) cur.entries.set(k, want.get(k)!.subarray(0, HEAD).toString('hex'));
    let error: string | undefined;
    try {
      this.writeKeys(added, want, cur.gen);
      for (const k of added) cur.entries.set(k, want.get(k)!.subarray(0, HEAD).toString('hex'));
    } catch (err) {
      this.deleteKeys(added, cur.gen);
      error = why(err, this.maps.policy, added.length);
    }
    this.writeEndpoint(slot, cur.gen, false, rev);
    Object.assign(cur, { ingressEnforced: slot.ingressEnforced, egressEnforced: slot.egressEnforced, audit: slot.audit });
    const changes = removed.length + changed.length + (error ? 0 : added.length);
    if (error) return { state: 'stale', changes, error: `the old policy stays in force without ${added.length} new allow entries (they only grant access): ${error}`, gen: cur.gen };
    return { state: 'ok', changes, gen: cur.gen };
  }

  private flip(cur: Programmed | undefined, slot: EndpointSlot, want: Map<string, Buffer>, rev: number): EndpointPolicyOutcome {
    const next = cur ? 1 - cur.gen : 0;
    const keys = [...want.keys()];
    let first: string | undefined;
    try {
      this.writeKeys(keys, want, next);
      return this.commit(cur, slot, want, next, rev, keys.length);
    } catch (err) {
      this.deleteKeys(keys, next);
      // A new endpoint whose entry cannot be created has no entry: its traffic is dropped as unknown.
      if (!cur && err instanceof EndpointWriteError) throw newEndpointError(err.cause, this.maps.endpoints, slot);
      first = why(err, this.maps.policy, keys.length);
    }
    // Fail closed before anything else: the old policy may allow what the new one revokes.
    this.failClose(cur, slot, rev);
    const prog = this.programmed.get(slot.epId)!;
    let changes = prog.entries.size;
    this.deleteKeys([...prog.entries.keys()], prog.gen);
    prog.entries.clear();
    try {
      this.writeKeys(keys, want, next);
      const outcome = this.commit(prog, slot, want, next, rev, keys.length + changes);
      this.log.warn({ ep: slot.epId, entries: keys.length, err: first }, 'endpoint policy written only after dropping its old entries (its traffic was dropped meanwhile)');
      return outcome;
    } catch (err) {
      this.deleteKeys(keys, next);
      return { state: 'fail-closed', changes, error: `its traffic is dropped: ${why(err, this.maps.policy, keys.length)}`, gen: prog.gen };
    }
  }

  /** Flips the endpoint to generation `gen` (holding `want`) and deletes the old generation. */
  private commit(cur: Programmed | undefined, slot: EndpointSlot, want: Map<string, Buffer>, gen: number, rev: number, changes: number): EndpointPolicyOutcome {
    this.writeEndpoint(slot, gen, false, rev);
    if (cur) this.deleteKeys([...cur.entries.keys()], cur.gen);
    const entries = new Map<string, string>();
    for (const [k, v] of want) entries.set(k, v.subarray(0, HEAD).toString('hex'));
    this.programmed.set(slot.epId, { ip: slot.ip, gen, failClosed: false, ingressEnforced: slot.ingressEnforced, egressEnforced: slot.egressEnforced, audit: slot.audit, entries });
    return { state: 'ok', changes: changes + (cur?.entries.size ?? 0), gen };
  }

  /**
   * Sets EP_F_FAIL_CLOSED (creating the entry of a new endpoint). If even that update fails, the
   * entry is deleted: an endpoint without one has all its traffic dropped too.
   */
  private failClose(cur: Programmed | undefined, slot: EndpointSlot, rev: number): void {
    const gen = cur?.gen ?? 0;
    try {
      this.writeEndpoint(slot, gen, true, rev);
    } catch (err) {
      if (!cur) throw err instanceof EndpointWriteError ? newEndpointError(err.cause, this.maps.endpoints, slot) : err;
      this.maps.endpoints.delete(encodeEndpointKey(slot.ip));
      this.log.error({ ep: slot.epId, err: (err as Error).message }, 'cannot mark the endpoint fail-closed: removed its entry instead (its traffic is dropped as unknown)');
    }
    const entries = cur?.entries ?? new Map<string, string>();
    this.programmed.set(slot.epId, { ip: slot.ip, gen, failClosed: true, ingressEnforced: slot.ingressEnforced, egressEnforced: slot.egressEnforced, audit: slot.audit, entries });
  }

  private writeEndpoint(slot: EndpointSlot, gen: number, failClosed: boolean, rev: number): void {
    const flags =
      (slot.ingressEnforced ? EP_F_INGRESS_ENFORCE : 0) |
      (slot.egressEnforced ? EP_F_EGRESS_ENFORCE : 0) |
      (slot.audit ? EP_F_AUDIT : 0) |
      (gen ? EP_F_POLICY_GEN : 0) |
      (failClosed ? EP_F_FAIL_CLOSED : 0);
    try {
      this.maps.endpoints.update(encodeEndpointKey(slot.ip), encodeEndpointInfo({ ip: slot.ip, ifindex: slot.ifindex, epId: slot.epId, flags, identity: slot.identity, policyRev: rev, mac: slot.mac, nodeMac: slot.nodeMac }));
    } catch (err) {
      throw new EndpointWriteError(err, this.maps.endpoints);
    }
  }

  /** One batch of the `keys` (gen-less hex) of `want`, under `gen`. */
  private writeKeys(keys: readonly string[], want: Map<string, Buffer>, gen: number): void {
    if (keys.length === 0) return;
    const kb = Buffer.alloc(keys.length * KEY);
    const vb = Buffer.alloc(keys.length * VALUE);
    keys.forEach((k, i) => {
      kb.write(k, i * KEY, 'hex');
      kb[i * KEY + GEN_OFF] = gen;
      want.get(k)!.copy(vb, i * VALUE);
    });
    this.maps.policy.updateBatch(kb, vb, keys.length);
  }

  private deleteKeys(keys: readonly string[], gen: number): void {
    if (keys.length === 0) return;
    const kb = Buffer.alloc(keys.length * KEY);
    keys.forEach((k, i) => {
      kb.write(k, i * KEY, 'hex');
      kb[i * KEY + GEN_OFF] = gen;
    });
    this.maps.policy.deleteBatch(kb, keys.length);
  }
}

/** The endpoint entry could not be written (as opposed to its policy entries). */
class EndpointWriteError extends Error {
  constructor(
    override readonly cause: unknown,
    map: BpfMap,
  ) {
    super(why(cause, map, 1));
  }
}

/** Gen-less key (hex) -> encoded value, for every entry of a policy. */
function encodeEntries(epId: number, entries: readonly PolicyMapEntry[]): Map<string, Buffer> {
  const want = new Map<string, Buffer>();
  for (const e of entries) {
    const k = Buffer.alloc(KEY);
    const key: Parameters<typeof encodePolicyKey>[2] = { epId, egress: e.egress, identity: e.identity, protocol: e.protocol };
    if (e.port) {
      key.port = e.port.port;
      key.portBits = e.port.bits;
    }
    encodePolicyKey(k, 0, key);
    const v = Buffer.alloc(VALUE);
    encodePolicyValue(v, 0, e.deny, e.ruleId);
    want.set(k.toString('hex'), v);
  }
  return want;
}

function genless(key: Buffer): string {
  const k = Buffer.from(key);
  k[GEN_OFF] = 0;
  return k.toString('hex');
}

/**
 * Whether going from `cur` to `want` (with `slot`'s enforcement and audit) takes any access away:
 * a direction newly enforced, audit turned off, a new deny entry, a removed allow entry, or an
 * allow turned into a deny. Removing a deny or adding an allow only grants.
 */
export function revokes(cur: Pick<Programmed, 'ingressEnforced' | 'egressEnforced' | 'audit' | 'entries'>, want: ReadonlyMap<string, Buffer>, slot: Pick<EndpointSlot, 'ingressEnforced' | 'egressEnforced' | 'audit'>): boolean {
  if (flagsRevoke(cur, slot)) return true;
  for (const [k, head] of cur.entries) {
    const wasDeny = Buffer.from(head, 'hex')[DENY_OFF] === 1;
    const next = want.get(k);
    if (!next) {
      if (!wasDeny) return true;
    } else if (!wasDeny && next[DENY_OFF] === 1) return true;
  }
  for (const [k, v] of want) if (!cur.entries.has(k) && v[DENY_OFF] === 1) return true;
  return false;
}

/** Whether the endpoint's flags take access away: a direction newly enforced or audit turned off. */
function flagsRevoke(cur: Pick<Programmed, 'ingressEnforced' | 'egressEnforced' | 'audit'>, slot: Pick<EndpointSlot, 'ingressEnforced' | 'egressEnforced' | 'audit'>): boolean {
  return (slot.ingressEnforced && !cur.ingressEnforced) || (slot.egressEnforced && !cur.egressEnforced) || (cur.audit && !slot.audit);
}

/** An operator's sentence for a failed write: a full map names the map, its size and the config key. */
function why(err: unknown, map: BpfMap, wanted: number): string {
  if (err instanceof EndpointWriteError) return err.message;
  if (err instanceof BpfSyscallError && err.mapFull) return `map ${map.name} is full (${map.maxEntries} entries; ${wanted} more needed; raise mapSizes.${sizeKeyOf(map.name) ?? '?'} in the agent config)`;
  return (err as Error).message;
}

/** The error of a new endpoint whose own entry cannot be created. */
function newEndpointError(err: unknown, map: BpfMap, slot: EndpointSlot): Error {
  if (err instanceof BpfSyscallError && err.mapFull) return new MapFullError(`endpoint ${intToIpv4(slot.ip)}`, map.name, map.maxEntries, sizeKeyOf(map.name), { cause: err });
  return err as Error;
}

/** The mapSizes key that sizes a map. */
export function sizeKeyOf(mapName: string): string | undefined {
  return (Object.keys(SIZED_MAPS) as SizedMap[]).find((k) => MapName[k] === mapName);
}
