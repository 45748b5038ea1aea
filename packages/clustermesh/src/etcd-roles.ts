/**
 * Who may do what in a cluster's etcd (docs/credentials.md). Users are the CNs of client
 * certificates of the cluster's etcd CA:
 *
 *   <node>                       an agent: role weft-agent (shared) + weft-node-<node> (its own keys)
 *   weft-clustermesh-apiserver   reads the cluster's state, writes the mesh cache and its status
 *   weft-admin                   weft apply, weft identity gc, tests: every key under weft/
 *   root                         etcd's administrator (users, roles): the lab, the credential issuer
 *
 * A node writes only its own node record, endpoints (endpoints/<node>/) and identity references
 * (noderefs/<node>/); it reads everything under weft/. Identity master and index keys are shared
 * on purpose: any node may create an identity, so every agent may write them (what that leaves
 * open is in the docs). Node names that would be one of the other users are refused.
 */
import { EtcdAuth, type EtcdRole } from '@weft/kvstore';
import { IdentityLayout } from '@weft/identity';
import { RESOURCES_ROOT } from '@weft/resources';
import { MESH_CLUSTERS_PREFIX, nodeEndpointsPrefix, nodeKey } from '@weft/schema';
import { MESH_STATUS_PREFIX } from './apiserver.js';
import { MESH_ROOT } from './types.js';
import { EtcdCredentialError } from './errors.js';

export const WEFT_ROOT = 'weft/';
export const ADMIN_USER = 'weft-admin';
export const APISERVER_USER = 'weft-clustermesh-apiserver';
export const AGENT_ROLE = 'weft-agent';
const RESERVED_USERS = new Set(['root', ADMIN_USER, APISERVER_USER]);
/** What config.ts accepts as a node name (a DNS subdomain label set without '/'): also the etcd user. */
const NODE_NAME = /^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/;

export function nodeRoleName(node: string): string {
  return `weft-node-${node}`;
}

/** Refuses a node name that is not one, or that would be another component's etcd user. */
export function checkNodeName(node: string): void {
  if (!NODE_NAME.test(node)) throw new EtcdCredentialError(`node name ${JSON.stringify(node)} must be a DNS name of at most 63 characters (a-z, 0-9, '-', '.')`);
  if (RESERVED_USERS.has(node)) throw new EtcdCredentialError(`node name ${JSON.stringify(node)} is the etcd user of another component (${[...RESERVED_USERS].join(', ')})`);
}

/** Every agent: read the cluster's state, resources, identities and mesh cache; create identities. */
export function agentRole(layout = new IdentityLayout()): EtcdRole {
  return {
    name: AGENT_ROLE,
    permissions: [
      { type: 'read', key: WEFT_ROOT, prefix: true },
      { type: 'readwrite', key: layout.mastersPrefix, prefix: true },
      { type: 'readwrite', key: layout.indexPrefix, prefix: true },
    ],
  };
}

/** One node's own keys: its node record (one key), its endpoints and its identity references. */
export function nodeRole(node: string, layout = new IdentityLayout()): EtcdRole {
  checkNodeName(node);
  return {
    name: nodeRoleName(node),
    permissions: [
      { type: 'readwrite', key: nodeKey(node) },
      { type: 'readwrite', key: nodeEndpointsPrefix(node), prefix: true },
      { type: 'readwrite', key: layout.nodeRefsPrefix(node), prefix: true },
    ],
  };
}

/** The clustermesh-apiserver: read what it exports, write what it imports and its status. */
export function apiserverRole(): EtcdRole {
  return {
    name: APISERVER_USER,
    permissions: [
      { type: 'read', key: WEFT_ROOT, prefix: true },
      { type: 'readwrite', key: MESH_ROOT, prefix: true },
      { type: 'readwrite', key: MESH_CLUSTERS_PREFIX, prefix: true },
      { type: 'readwrite', key: MESH_STATUS_PREFIX, prefix: true },
    ],
  };
}

/** weft apply (resources, their ClusterIP index), weft identity gc, operators' tools. */
export function adminRole(): EtcdRole {
  return { name: ADMIN_USER, permissions: [{ type: 'readwrite', key: WEFT_ROOT, prefix: true }] };
}

/** Resources are the admin's: listed so docs and tests can say which keys no agent may write. */
export const ADMIN_ONLY_PREFIXES = [RESOURCES_ROOT];

/**
 * Converges a cluster's etcd to these roles and users and switches auth on. Needs a root
 * client (before auth is on, any client is root). Nodes are admitted one by one (admitNode).
 */
export async function applyClusterRoles(auth: EtcdAuth): Promise<void> {
  for (const role of [agentRole(), apiserverRole(), adminRole()]) await auth.ensureRole(role);
  await auth.ensureUser(APISERVER_USER, [APISERVER_USER]);
  await auth.ensureUser(ADMIN_USER, [ADMIN_USER]);
  await auth.enable();
}

/** Gives node `node` its etcd user (= its certificate's CN) with the shared and its own role. */
export async function admitNode(auth: EtcdAuth, node: string): Promise<void> {
  await auth.ensureRole(nodeRole(node));
  await auth.ensureUser(node, [AGENT_ROLE, nodeRoleName(node)]);
}

/** Takes a node's etcd user and role away (the node left the cluster). */
export async function removeNode(auth: EtcdAuth, node: string): Promise<void> {
  checkNodeName(node);
  await auth.deleteUser(node);
  await auth.deleteRole(nodeRoleName(node));
}
