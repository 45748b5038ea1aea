/**
 * Test support for every package whose tests need a real etcd: one server per
 * suite, started in `before` and stopped in `after` (so nothing outlives the
 * suite, even when a test fails), and a polling wait for eventual state.
 */
import { KvClient } from './client.js';
import { EtcdProcess } from './etcd-process.js';

export interface TestEtcd {
  readonly etcd: EtcdProcess;
  /** A client for the test's own reads and writes. */
  readonly kv: KvClient;
}

/** Registers mocha hooks that run a real etcd for the enclosing suite. */
export function useTestEtcd(name: string): TestEtcd {
  let etcd: EtcdProcess | undefined;
  let kv: KvClient | undefined;
  before(async () => {
    etcd = await EtcdProcess.start({ name });
    kv = new KvClient({ endpoints: [etcd.endpoint] });
  });
  after(async () => {
    kv?.close();
    await etcd?.stop();
  });
  return {
    get etcd() {
      if (!etcd) throw new Error('the test etcd is only available inside tests and hooks');
      return etcd;
    },
    get kv() {
      if (!kv) throw new Error('the test etcd is only available inside tests and hooks');
      return kv;
    },
  };
}

/** Polls `cond` until it holds; fails naming `what` after `timeoutMs`. */
export async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
