import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { silentLogger } from '@weft/common';
import { EtcdProcess, KvClient, freePort, op, until } from '@weft/kvstore';
import { ClusterMeshApiServer } from './apiserver.js';
import { createCa, issue, type Pem } from './certs.js';
import type { Exporter } from './exporter.js';
import { BATCH_BYTES, IN_FLIGHT_BYTES } from './subscription.js';
import type { MeshConfig, SyncBatch } from './types.js';
import { KEEPALIVE, MAX_MESSAGE_BYTES, MeshClient } from './wire.js';

/**
 * A remote that connects and then stops reading (slow, stuck or hostile) must cost the
 * exporting apiserver a bounded backlog however much changes meanwhile, and is eventually
 * disconnected. The reader is a real gRPC client over mTLS that pauses its stream; the changes
 * are real etcd writes the apiserver's watchers see.
 */
describe('clustermesh export flow control @etcd', function () {
  this.timeout(120_000);
  let etcd: EtcdProcess;
  let kv: KvClient;
  let ca: Pem;
  let server: ClusterMeshApiServer | undefined;
  let client: grpc.Client | undefined;

  before(async () => {
    etcd = await EtcdProcess.start({ name: 'mesh-flow' });
    kv = new KvClient({ endpoints: [etcd.endpoint] });
    ca = await createCa('west');
    await kv.put('weft/state/v1/nodes/w1', JSON.stringify({ name: 'w1', cluster: 'west', ip: '10.99.2.11', podCidr: '10.102.0.0/16', routing: 'vxlan' }));
  });
  afterEach(async () => {
    client?.close();
    await server?.stop();
    server = undefined;
  });
  after(async () => {
    kv?.close();
    await etcd?.stop();
  });

  async function start(exportStallSeconds?: number): Promise<ClusterMeshApiServer> {
    const cert = await issue(ca, 'clustermesh-west', { ips: ['127.0.0.1'] });
    const eastCa = await createCa('east');
    // east is configured (so its certificate is accepted) but never reachable: only its reading matters.
    const config: MeshConfig = { cluster: 'west', clusterId: 2, etcd: [etcd.endpoint], listen: `127.0.0.1:${await freePort()}`, ca: ca.cert, cert: cert.cert, key: cert.key, remotes: [{ name: 'east', id: 1, address: `127.0.0.1:${await freePort()}`, ca: eastCa.cert, ...(await issue(eastCa, 'west')) }], ...(exportStallSeconds ? { exportStallSeconds } : {}) };
    server = new ClusterMeshApiServer(config, silentLogger());
    await server.start();
    return server;
  }

  /** east's importer as a hostile reader: it reads the first message, then nothing. */
  async function stuckReader(listen: string): Promise<{ call: grpc.ClientReadableStream<SyncBatch>; ended: () => string | undefined }> {
    const mine = await issue(ca, 'east');
    client = new MeshClient(listen, grpc.credentials.createSsl(Buffer.from(ca.cert), Buffer.from(mine.key), Buffer.from(mine.cert)), { 'grpc.max_receive_message_length': MAX_MESSAGE_BYTES, ...KEEPALIVE });
    const call = (client as unknown as { sync(req: unknown): grpc.ClientReadableStream<SyncBatch> }).sync({ cluster: 'east', kinds: ['identities', 'nodes', 'endpoints', 'services'] });
    let ended: string | undefined;
    call.once('data', () => call.pause());
    call.on('error', (err: grpc.ServiceError) => (ended = `${grpc.status[err.code]}: ${err.details}`));
    return { call, ended: () => ended };
  }

  /** `rounds` rewrites of `keys` endpoint records of about 8 KiB each, as fast as etcd takes them. */
  async function churn(keys: number, rounds: number): Promise<void> {
    const filler = 'x'.repeat(8000);
    for (let r = 0; r < rounds; r++) {
      const ops = [];
      for (let k = 0; k < keys; k++) {
        const ip = `10.102.7.${k + 1}`;
        ops.push(op.put(`weft/state/v1/endpoints/w1/${ip}`, JSON.stringify({ ip, identity: (2 << 16) | 300, node: 'w1', nodeIp: '10.99.2.11', namespace: 'd', pod: `p${k}`, labels: { round: String(r), filler } })));
        if (ops.length === 100) await kv.txn('churn', { compare: [], success: ops.splice(0) });
      }
      if (ops.length) await kv.txn('churn', { compare: [], success: ops });
    }
  }

  it('keeps the backlog of a reader that stopped reading to the keys that changed, however often they changed', async () => {
    const west = await start();
    const reader = await stuckReader(west.config.listen);
    await until(() => west.status().servingTo.includes('east'), 'east to be served');
    // 40 records rewritten 100 times (~32 MB of changes): queued as batches, it would all be held.
    await churn(40, 100);
    const exporter = (west as unknown as { exporter: Exporter }).exporter;
    await until(() => [...exporter.localValues('endpoints')].filter((v) => v.includes('"round":"99"')).length === 40, 'the exporter to see every change');
    const backlog = west.status().serving.find((s) => s.peer === 'east')!;
    assert.ok(backlog.pendingKeys <= 41, `a pending key per record at most, got ${backlog.pendingKeys}`);
    assert.ok(backlog.inFlightBytes <= IN_FLIGHT_BYTES + BATCH_BYTES, `in flight ${backlog.inFlightBytes} bytes`);
    assert.ok(backlog.stalledSince, 'the stall is reported');
    assert.equal(reader.ended(), undefined, 'a slow reader is not dropped before exportStallSeconds');
    // A reader that comes back gets the latest value of every key, not the history.
    const seen = new Map<string, string>();
    reader.call.on('data', (b: SyncBatch) => b.upserts.forEach(([k, v]) => seen.set(k, v)));
    reader.call.resume();
    await until(() => [...seen.values()].filter((v) => v.includes('"round":"99"')).length === 40, 'the reader to catch up');
  });

  it('resets the stream of a reader that takes nothing for exportStallSeconds, and frees its backlog', async () => {
    const west = await start(1);
    const reader = await stuckReader(west.config.listen);
    await until(() => west.status().servingTo.includes('east'), 'east to be served');
    await churn(40, 20);
    await until(() => reader.ended() !== undefined, 'the stuck reader to be disconnected');
    assert.match(reader.ended()!, /^CANCELLED/);
    await until(() => west.status().serving.length === 0, 'its subscription to go');
    assert.equal(west.status().stalledPeers, 1);
  });
});
