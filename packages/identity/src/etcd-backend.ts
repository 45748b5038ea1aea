/** The allocator's backend on a real etcd (see layout.ts for the keys). */
import { cmp, op, type KvClient, type KeyValue, type TxnOp, type Compare } from '@weft/kvstore';
import type { IdentityBackend, StoreView, WriteResult } from './backend.js';
import { IdentityLayout } from './layout.js';
import { parseIdentity } from './numeric.js';

export class EtcdIdentityBackend implements IdentityBackend {
  constructor(
    private readonly client: KvClient,
    readonly layout: IdentityLayout = new IdentityLayout(),
  ) {}

  claim(id: number, labels: string, node: string, lease: string, signal?: AbortSignal): Promise<WriteResult> {
    const L = this.layout;
    return this.write(`claim identity ${id}`, id, labels, [cmp.valueIs(L.master(id), labels), cmp.valueIs(L.index(labels), String(id))], [
      op.put(L.index(labels), String(id)),
      op.put(L.ref(id, node), labels, lease),
    ], signal);
  }

  create(id: number, labels: string, node: string, lease: string, signal?: AbortSignal): Promise<WriteResult> {
    const L = this.layout;
    return this.write(`create identity ${id}`, id, labels, [cmp.absent(L.master(id)), cmp.absent(L.index(labels))], [
      op.put(L.master(id), labels),
      op.put(L.index(labels), String(id)),
      op.put(L.ref(id, node), labels, lease),
    ], signal);
  }

  repairMaster(id: number, labels: string, node: string, lease: string, signal?: AbortSignal): Promise<WriteResult> {
    const L = this.layout;
    return this.write(`restore master key of identity ${id}`, id, labels, [cmp.absent(L.master(id)), cmp.valueIs(L.index(labels), String(id))], [
      op.put(L.master(id), labels),
      op.put(L.index(labels), String(id)),
      op.put(L.ref(id, node), labels, lease),
    ], signal);
  }

  repairIndex(id: number, labels: string, node: string, lease: string, signal?: AbortSignal): Promise<WriteResult> {
    const L = this.layout;
    return this.write(`restore index of identity ${id}`, id, labels, [cmp.valueIs(L.master(id), labels), cmp.absent(L.index(labels))], [
      op.put(L.index(labels), String(id)),
      op.put(L.ref(id, node), labels, lease),
    ], signal);
  }

  async dropIndex(labels: string, modRevision: number, signal?: AbortSignal): Promise<boolean> {
    const key = this.layout.index(labels);
    const res = await this.client.txn(`drop stale index for ${labels}`, { compare: [cmp.modRevisionIs(key, modRevision)], success: [op.delete(key)] }, signal ? { signal } : {});
    return res.succeeded;
  }

  async view(id: number | undefined, labels: string, signal?: AbortSignal): Promise<StoreView> {
    const reads: TxnOp[] = [op.get(this.layout.index(labels))];
    if (id !== undefined) reads.push(op.get(this.layout.master(id)));
    const res = await this.client.txn(`read identity of ${labels}`, { compare: [], success: reads }, signal ? { signal } : {});
    return toView(res.gets[0]?.[0], res.gets[1]?.[0]);
  }

  async release(id: number, node: string, signal?: AbortSignal): Promise<void> {
    await this.client.delete(this.layout.ref(id, node), signal ? { signal } : {});
  }

  private async write(action: string, id: number, labels: string, compare: Compare[], success: TxnOp[], signal?: AbortSignal): Promise<WriteResult> {
    const res = await this.client.txn(action, {
      compare,
      success,
      failure: [op.get(this.layout.index(labels)), op.get(this.layout.master(id))],
    }, signal ? { signal } : {});
    if (res.succeeded) return { ok: true };
    return { ok: false, view: toView(res.gets[0]?.[0], res.gets[1]?.[0]) };
  }
}

function toView(index: KeyValue | undefined, master: KeyValue | undefined): StoreView {
  const view: StoreView = {};
  if (index) view.index = { id: parseIdentity(index.value.toString()), modRevision: index.modRevision };
  if (master) view.master = { labels: master.value.toString(), modRevision: master.modRevision };
  return view;
}
