/**
 * Node-to-node encryption as the rest of the agent sees it, whichever the
 * mode: WireGuard (wireguard-node.ts) or IPsec (ipsec-node.ts). Given every
 * node of every connected cluster, a mode configures its peers and says how
 * each peer's pod CIDR is routed so that pod traffic to it leaves encrypted;
 * the cluster state marks exactly those peers' pods as encrypted in the
 * ipcache (strict mode drops what would leave in the clear).
 */
import type { Lane, NodeRecord } from '@weft/schema';

export interface PeerNode {
  cluster: string;
  record: NodeRecord;
}

export interface EncryptionSync {
  /** `cluster/node` -> the route (after the prefix) its pod CIDR takes to leave encrypted. */
  routes: Map<string, string>;
  /** Something waits on time (a session to come up, a rotation): sync again soon. */
  recheck: boolean;
}

export interface NodeEncryption {
  readonly mode: 'wireguard' | 'ipsec';
  start(): Promise<void>;
  stop(): void;
  /** Stops, then removes from the node what this mode put there (`weft agent uninstall`); returns what went. */
  uninstall(): Promise<string[]>;
  /** Adds this mode's part (keys, epochs, confirmations) to the node record about to be published. */
  publish(record: NodeRecord): void;
  sync(nodes: readonly PeerNode[]): Promise<EncryptionSync>;
  /** After the routes of the last sync are in the kernel: a rotation may take its next step. */
  advance(): Promise<void>;
  /** Starts a key rotation on this node (`weft encrypt rotate`). */
  rotate(reason: RotationRecord['reason']): { lane: number; epoch: number };
  status(): Promise<EncryptionStatus>;
  /** Told when the node record must be published again. */
  onRecordChanged: () => void;
  /** Told when a sync is needed outside of record changes. */
  onSyncNeeded: () => void;
  /**
   * Told when a key rotation ends on this node (metrics): WireGuard's, done or given up, with its
   * duration; IPsec's once this node sends under the new key id (duration from the key file's
   * change, when this agent saw it).
   */
  onRotationFinished: (outcome: RotationRecord['outcome'], durationMs: number | undefined) => void;
}

/** A session is live while its last handshake is younger than WireGuard's REJECT_AFTER_TIME. */
export const LIVE_HANDSHAKE_S = 180;

export interface RotationRecord {
  lane: Lane;
  reason: 'manual' | 'schedule';
  startedAt: string;
  finishedAt?: string;
  durationMs?: number;
  outcome: 'done' | 'aborted';
  detail?: string;
}

export interface EncryptionStatus {
  mode: 'wireguard' | 'ipsec' | 'off';
  strict: boolean;
  /**
   * Receive side: whether pod traffic from another node arriving in the clear is dropped, and by
   * what (strict WireGuard: from_underlay on the underlay device; IPsec: XFRM in policies).
   */
  clearIngress?: { dropped: boolean; by?: string };
  routerIp?: string;
  /** WireGuard: this node's epoch, grows with every key change and rotation phase. */
  epoch?: number;
  /** WireGuard: this node's two devices; `implementation`: kernel WireGuard or wireguard-go (userspace). */
  lanes?: Array<{ lane: Lane; device: string; implementation: 'kernel' | 'userspace'; publicKey: string; port: number; keyCreated: string }>;
  rotation?: { lane: Lane; phase: 'drain' | 'rekey'; startedAt: string; waitingFor: string[] };
  lastRotation?: RotationRecord;
  /** When the schedule rotates next (absent: no schedule). */
  nextRotation?: string;
  /** IPsec: the mesh key ids this node accepts, the one it sends under, and the key file. */
  ipsec?: { keyIds: number[]; sendKeyId: number; keyFile: string; waitingFor: string[]; keyFileError?: string };
  peers: Array<{
    node: string;
    cluster: string;
    /** Pod traffic to this peer leaves encrypted. */
    encrypted: boolean;
    endpoint: string;
    allowedIps: string[];
    /** WireGuard: latest handshake on either lane. */
    lastHandshake?: string;
    /** Bytes received from / sent to the peer (WireGuard: both lanes; IPsec: its SAs). */
    rxBytes: number;
    txBytes: number;
    /** WireGuard: the peer's epoch, the lane it rotates if it does, the lane traffic to it uses. */
    epoch?: number;
    rotating?: string;
    sendLane?: Lane;
    device?: string;
    lanes?: Array<{ lane: Lane; publicKey: string; endpoint: string; lastHandshake?: string; rxBytes: number; txBytes: number }>;
    /** IPsec: the peer's key ids and send key; the SAs with it (state and counters). */
    keyIds?: number[];
    sendKeyId?: number;
    sas?: Array<{ direction: 'in' | 'out'; spi: string; keyId: number; packets: number; bytes: number; integrityFailures: number; replayDrops: number }>;
  }>;
  /** Nodes that cannot be peers (no key, or a key another node also claims), with the reason. */
  refused: Array<{ node: string; cluster: string; reason: string }>;
}
