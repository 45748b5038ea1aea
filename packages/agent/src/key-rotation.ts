/**
 * Make-before-break rotation of WireGuard static keys: the decisions, kept
 * free of I/O so they can be tested exhaustively.
 *
 * Every node runs two WireGuard devices ("lanes", 0 and 1), each with its own
 * key pair, and configures every peer on both. WireGuard accepts a packet
 * only from the one peer whose allowed IPs hold its inner source, so one
 * device cannot hold a peer's old and new key at once; two lanes can. Each
 * direction of each node pair sends on one lane; both lanes always receive.
 *
 * A node N rotates the key of lane k in two confirmed phases:
 *   drain  N stops sending on lane k and publishes {rotation: k, drain}
 *          with a new epoch. Every peer moves its sending to N off lane k
 *          (only onto a lane with a live session) and confirms by writing
 *          N's epoch into its own node record (`acks`).
 *   rekey  once every peer confirmed: N writes a new key for lane k,
 *          installs it and publishes it with a new epoch; every peer
 *          installs it on its lane-k device and confirms again.
 *   done   once every peer confirmed: N publishes no rotation. Lane k now
 *          carries the new key on both ends and may be used again.
 * So receivers hold the new key before any sender uses it, and the old key
 * is replaced only after every peer confirmed it no longer sends with it.
 * Packets already in flight on lane k still decrypt: wireguard-go and kernel
 * WireGuard keep the receive keys of their sessions when the private key
 * changes.
 *
 * Two nodes rotating different lanes at once would leave their pair without
 * a lane: a node joins the lane its peers already rotate, and if two start
 * at the same moment with different lanes, the one behind (draining, and
 * with the greater name, or behind one already rekeying) gives up its drain,
 * which changed nothing but where it sent.
 */
import type { Lane, WireGuardRecord } from '@weft/schema';

export interface RotationState {
  lane: Lane;
  phase: 'drain' | 'rekey';
  startedAtMs: number;
}

export interface PeerView {
  /** `cluster/node`. */
  id: string;
  wireguard: WireGuardRecord;
}

/**
 * The lane to send to a peer on. Sticky: a lane in use stays in use until a
 * rotation (ours or the peer's) blocks it; then traffic moves to the other
 * lane once that lane has a live session, or at once if neither has one
 * (nothing to lose). Undefined current: the first usable lane, live first.
 * With both lanes blocked (a conflict being resolved) nothing moves.
 */
export function chooseSendLane(current: Lane | undefined, blocked: ReadonlySet<Lane>, live: (lane: Lane) => boolean): Lane {
  const usable = ([0, 1] as const).filter((l) => !blocked.has(l));
  if (current !== undefined && !blocked.has(current)) return current;
  if (usable.length === 0) return current ?? 0;
  if (current === undefined) return usable.find(live) ?? usable[0]!;
  const target = usable[0]!;
  return live(target) || !live(current) ? target : current;
}

/** The lanes a rotation on either end keeps traffic off. */
export function blockedLanes(own: RotationState | undefined, peer: WireGuardRecord): Set<Lane> {
  const out = new Set<Lane>();
  if (own) out.add(own.lane);
  if (peer.rotation) out.add(peer.rotation.lane);
  return out;
}

/**
 * What this node confirms to a rotating peer: its epoch, once nothing is
 * sent to it on the lane it rotates (the peer's current keys are already
 * installed by the time this is asked). Undefined: nothing to confirm yet.
 */
export function ackFor(peer: WireGuardRecord, sendLane: Lane): number | undefined {
  if (!peer.rotation) return undefined;
  return sendLane === peer.rotation.lane ? undefined : peer.epoch;
}

/**
 * The lane a new rotation should rotate: the one peers already rotate, if
 * any; else the one whose key is older. Throws when peers rotate both lanes
 * (start again once they finish).
 */
export function pickRotationLane(peers: readonly PeerView[], keyBornMs: readonly [number, number]): Lane {
  const rotating = new Map<Lane, string>();
  for (const p of peers) if (p.wireguard.rotation) rotating.set(p.wireguard.rotation.lane, p.id);
  if (rotating.size === 2) throw new RangeError(`peers ${rotating.get(0)} (lane 0) and ${rotating.get(1)} (lane 1) are rotating different lanes; try again when they are done`);
  const [only] = rotating.keys();
  if (only !== undefined) return only;
  return keyBornMs[0] <= keyBornMs[1] ? 0 : 1;
}

export type RotationStep = { kind: 'wait'; waitingFor: string[] } | { kind: 'next' } | { kind: 'abort'; reason: string };

/**
 * Where this node's own rotation stands: wait (for whom), move to the next
 * phase, or give the drain up (a conflicting rotation, or peers that did
 * not confirm in time). A rekey is never given up: the old key is gone, and
 * a slow peer only keeps its traffic on the other lane meanwhile.
 */
export function rotationStep(args: {
  me: string;
  rotation: RotationState;
  epoch: number;
  peers: readonly PeerView[];
  /** The lanes this node sends on now (installed routes). */
  sendLanes: Iterable<Lane>;
  nowMs: number;
  drainTimeoutMs: number;
}): RotationStep {
  const { me, rotation, epoch, peers } = args;
  if (rotation.phase === 'drain') {
    for (const p of peers) {
      const r = p.wireguard.rotation;
      if (!r || r.lane === rotation.lane) continue;
      if (r.phase === 'rekey' || p.id < me) return { kind: 'abort', reason: `${p.id} is rotating lane ${r.lane} (${r.phase}); lane ${rotation.lane} waits until it is done` };
    }
  }
  const waitingFor = peers.filter((p) => p.wireguard.acks?.[me] !== epoch).map((p) => p.id);
  if ([...args.sendLanes].includes(rotation.lane)) waitingFor.unshift(`${me} (own traffic still on lane ${rotation.lane})`);
  if (waitingFor.length === 0) return { kind: 'next' };
  if (rotation.phase === 'drain' && args.nowMs - rotation.startedAtMs > args.drainTimeoutMs) {
    return { kind: 'abort', reason: `not confirmed within ${args.drainTimeoutMs} ms by ${waitingFor.join(', ')}` };
  }
  return { kind: 'wait', waitingFor };
}
