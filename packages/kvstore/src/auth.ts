/**
 * etcd's role-based access control, converged to a wanted state: roles with exactly the
 * permissions asked for (extra ones revoked), users with exactly the roles asked for, and auth
 * switched on. Idempotent, so the lab and the chart's issuer run it on every start.
 *
 * Users authenticate with client certificates (etcd's --client-cert-auth: the user is the
 * certificate's CN). etcd 3.4 cannot create a user without a password, so each gets a random one
 * that is never stored or shown: nobody can log in with it. etcd needs a `root` user with role
 * `root` before auth can be enabled; it gets such a password too, and whoever holds a root
 * certificate administers the store.
 */
import { randomBytes } from 'node:crypto';
import type { KvClient } from './client.js';
import { prefixEnd } from './client.js';

export type EtcdPermissionType = 'read' | 'write' | 'readwrite';

/** One grant: a key, or every key under a prefix. */
export interface EtcdPermission {
  type: EtcdPermissionType;
  key: string;
  prefix?: boolean;
}

export interface EtcdRole {
  name: string;
  permissions: EtcdPermission[];
}

const TYPE_NUMBER: Record<EtcdPermissionType, number> = { read: 0, write: 1, readwrite: 2 };

function typeOf(v: unknown): EtcdPermissionType {
  if (v === 0 || v === 'READ' || v === 'Read') return 'read';
  if (v === 1 || v === 'WRITE' || v === 'Write') return 'write';
  return 'readwrite';
}

/** A grant's identity: its type and exact byte range. */
function grantId(type: EtcdPermissionType, key: Buffer, rangeEnd: Buffer | undefined): string {
  return `${type}|${key.toString('hex')}|${rangeEnd && rangeEnd.length > 0 ? rangeEnd.toString('hex') : ''}`;
}

function range(p: EtcdPermission): { key: Buffer; rangeEnd: Buffer | undefined } {
  return { key: Buffer.from(p.key), rangeEnd: p.prefix ? prefixEnd(p.key) : undefined };
}

/** An unusable password: random, never stored, never shown (certificates are the credential). */
function unusablePassword(): string {
  return randomBytes(32).toString('base64url');
}

/** "already exists" errors are the converged state for adds. */
function exists(err: unknown): boolean {
  return /already exists/i.test(`${(err as Error)?.message ?? ''} ${(err as { details?: string })?.details ?? ''}`);
}

export class EtcdAuth {
  constructor(private readonly kv: KvClient) {}

  private get rpc(): KvClient['etcd']['auth'] {
    return this.kv.etcd.auth;
  }

  /** Creates or corrects a role so that it holds exactly `role.permissions`. */
  async ensureRole(role: EtcdRole): Promise<void> {
    await this.kv.call(`add etcd role ${role.name}`, async () => {
      try {
        await this.rpc.roleAdd({ name: role.name });
      } catch (err) {
        if (!exists(err)) throw err;
      }
    });
    const current = await this.kv.call(`read etcd role ${role.name}`, () => this.rpc.roleGet({ role: role.name }));
    const want = new Map(role.permissions.map((p) => {
      const r = range(p);
      return [grantId(p.type, r.key, r.rangeEnd), p] as const;
    }));
    const have = new Set<string>();
    for (const p of current.perm ?? []) {
      const id = grantId(typeOf(p.permType), Buffer.from(p.key), p.range_end ? Buffer.from(p.range_end) : undefined);
      if (want.has(id)) {
        have.add(id);
        continue;
      }
      const r = { role: role.name, key: Buffer.from(p.key), ...(p.range_end && p.range_end.length > 0 ? { range_end: Buffer.from(p.range_end) } : {}) };
      await this.kv.call(`revoke a permission of etcd role ${role.name}`, () => this.rpc.roleRevokePermission(r));
    }
    for (const [id, p] of want) {
      if (have.has(id)) continue;
      const r = range(p);
      const perm = { permType: TYPE_NUMBER[p.type] as unknown as 'Read', key: r.key, range_end: r.rangeEnd ?? Buffer.alloc(0) };
      await this.kv.call(`grant ${p.type} on ${p.key}${p.prefix ? '*' : ''} to etcd role ${role.name}`, () => this.rpc.roleGrantPermission({ name: role.name, perm }));
    }
  }

  /** Creates a user (unusable password) or corrects one, so that it holds exactly `roles`. */
  async ensureUser(name: string, roles: string[]): Promise<void> {
    await this.kv.call(`add etcd user ${name}`, async () => {
      try {
        await this.rpc.userAdd({ name, password: unusablePassword() });
      } catch (err) {
        if (!exists(err)) throw err;
      }
    });
    const current = await this.kv.call(`read etcd user ${name}`, () => this.rpc.userGet({ name }));
    for (const r of current.roles ?? []) {
      if (!roles.includes(r)) await this.kv.call(`revoke role ${r} from etcd user ${name}`, () => this.rpc.userRevokeRole({ name, role: r }));
    }
    for (const r of roles) {
      if (!(current.roles ?? []).includes(r)) await this.kv.call(`grant role ${r} to etcd user ${name}`, () => this.rpc.userGrantRole({ user: name, role: r }));
    }
  }

  async deleteUser(name: string): Promise<void> {
    await this.kv.call(`delete etcd user ${name}`, async () => {
      try {
        await this.rpc.userDelete({ name });
      } catch (err) {
        if (!/not found/i.test((err as Error).message)) throw err;
      }
    });
  }

  async deleteRole(name: string): Promise<void> {
    await this.kv.call(`delete etcd role ${name}`, async () => {
      try {
        await this.rpc.roleDelete({ role: name });
      } catch (err) {
        if (!/not found/i.test((err as Error).message)) throw err;
      }
    });
  }

  async users(): Promise<string[]> {
    return (await this.kv.call('list etcd users', () => this.rpc.userList())).users ?? [];
  }

  async roles(): Promise<string[]> {
    return (await this.kv.call('list etcd roles', () => this.rpc.roleList())).roles ?? [];
  }

  /** Switches auth on (idempotent; etcd 3.4 has no AuthStatus to ask first): the `root` user with role `root` first, as etcd requires. */
  async enable(): Promise<void> {
    await this.ensureUser('root', ['root']);
    await this.kv.call('enable etcd auth', () => this.rpc.authEnable());
  }
}
