/**
 * Numeric security identities. 24 bits, because they travel in the VXLAN VNI:
 *
 *   bits 23..16  cluster id (1-255)     bits 15..0  local id (256-65535)
 *
 * Ids 1-255 (cluster bits zero) are reserved, with names, and mean the same in
 * every cluster. 0 is "any" in policy lookups and never an identity. So the
 * identities of two clusters can never collide: their cluster bits differ.
 */
import { InvalidClusterIdError, IdentityOutOfRangeError } from './errors.js';

export const CLUSTER_ID_MIN = 1;
export const CLUSTER_ID_MAX = 255;
export const LOCAL_ID_MIN = 256;
export const LOCAL_ID_MAX = 0xffff;
export const IDENTITY_MAX = 0xffffff;
const CLUSTER_SHIFT = 16;

/** Reserved identities (append-only: a number is never reused for another meaning). */
export const ReservedIdentity = {
  host: 1,
  world: 2,
  unmanaged: 3,
  health: 4,
  init: 5,
  'remote-node': 6,
  'kube-apiserver': 7,
  ingress: 8,
  'world-ipv4': 9,
  'world-ipv6': 10,
} as const;

export type ReservedName = keyof typeof ReservedIdentity;

const reservedNames = new Map<number, ReservedName>(
  Object.entries(ReservedIdentity).map(([name, id]) => [id, name as ReservedName]),
);

export function reservedName(id: number): ReservedName | undefined {
  return reservedNames.get(id);
}

export function isReserved(id: number): boolean {
  return id >= 1 && id <= 255;
}

/** Checks a cluster id; returns it so callers can validate inline. */
export function validateClusterId(clusterId: unknown, action = 'use cluster id'): number {
  if (typeof clusterId !== 'number' || !Number.isInteger(clusterId) || clusterId < CLUSTER_ID_MIN || clusterId > CLUSTER_ID_MAX) {
    throw new InvalidClusterIdError(action, clusterId);
  }
  return clusterId;
}

export function makeIdentity(clusterId: number, localId: number): number {
  validateClusterId(clusterId, 'make identity');
  if (!Number.isInteger(localId) || localId < LOCAL_ID_MIN || localId > LOCAL_ID_MAX) {
    throw new IdentityOutOfRangeError(`Cannot make identity: local id ${localId} is out of range ${LOCAL_ID_MIN}-${LOCAL_ID_MAX}`);
  }
  return (clusterId << CLUSTER_SHIFT) | localId;
}

export function clusterIdOf(id: number): number {
  return (id >>> CLUSTER_SHIFT) & 0xff;
}

export function localIdOf(id: number): number {
  return id & 0xffff;
}

/** The inclusive range of identities a cluster allocates from. */
export interface IdentityRange {
  clusterId: number;
  first: number;
  last: number;
}

export function identityRange(clusterId: number, localMin = LOCAL_ID_MIN, localMax = LOCAL_ID_MAX): IdentityRange {
  validateClusterId(clusterId, 'compute identity range');
  if (!Number.isInteger(localMin) || !Number.isInteger(localMax) || localMin < LOCAL_ID_MIN || localMax > LOCAL_ID_MAX || localMin > localMax) {
    throw new IdentityOutOfRangeError(`Cannot compute identity range: local ids ${localMin}-${localMax} are not within ${LOCAL_ID_MIN}-${LOCAL_ID_MAX}`);
  }
  return { clusterId, first: makeIdentity(clusterId, localMin), last: makeIdentity(clusterId, localMax) };
}

/** Whether `id` is a valid allocated (non-reserved) identity of `clusterId`. */
export function inCluster(id: number, clusterId: number): boolean {
  return Number.isInteger(id) && id > 0 && id <= IDENTITY_MAX && clusterIdOf(id) === clusterId && localIdOf(id) >= LOCAL_ID_MIN;
}

/** Parses the decimal form used in keys and values; undefined unless it is a canonical 24-bit integer. */
export function parseIdentity(text: string): number | undefined {
  if (!/^[1-9][0-9]{0,7}$/.test(text)) return undefined;
  const id = Number(text);
  return id <= IDENTITY_MAX ? id : undefined;
}
