/**
 * The mesh service on gRPC, with JSON messages (a generic service definition:
 * no code generation, and messages stay readable in captures).
 *   /weft.mesh.v1.Mesh/Sync     SyncRequest -> stream SyncBatch
 *   /weft.mesh.v1.Mesh/Health   {} -> HealthReport (health.ts; the probe of its own pod)
 */
import * as grpc from '@grpc/grpc-js';
import type { HealthReport } from '@weft/common';
import type { SyncBatch, SyncRequest } from './types.js';

const json = {
  serialize: (v: unknown): Buffer => Buffer.from(JSON.stringify(v)),
  deserialize: (b: Buffer): unknown => JSON.parse(b.toString()),
};

export const MeshService: grpc.ServiceDefinition = {
  sync: {
    path: '/weft.mesh.v1.Mesh/Sync',
    requestStream: false,
    responseStream: true,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize as (b: Buffer) => SyncRequest,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize as (b: Buffer) => SyncBatch,
  },
  health: {
    path: '/weft.mesh.v1.Mesh/Health',
    requestStream: false,
    responseStream: false,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize as (b: Buffer) => HealthReport,
  },
};

export const MeshClient = grpc.makeGenericClientConstructor(MeshService, 'Mesh');

/** Largest message either side accepts (a batch of 1,000 records fits many times). */
export const MAX_MESSAGE_BYTES = 16 << 20;

/**
 * Keepalive on both ends of a link: a ping every 30 s, answered within 20 s.
 * Generous on purpose: a busy peer (a big snapshot, a loaded machine) that
 * answers late must not be dropped, or every reconnect resends a snapshot and
 * makes it busier (the reconnect storm of large meshes). A peer that really
 * died closes its TCP connection and is noticed at once; a silent one within 50 s.
 */
export const KEEPALIVE = { 'grpc.keepalive_time_ms': 30_000, 'grpc.keepalive_timeout_ms': 20_000 } as const;
