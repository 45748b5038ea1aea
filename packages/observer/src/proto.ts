/**
 * The Observer service as grpc-js loads it from proto/observer.proto (shipped with the package):
 * the same options the generated types in src/gen were made with, so what arrives is what the
 * `__Output` types say (longs as numbers, enums as names, defaults filled in, the oneof's name set).
 */
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType } from './gen/observer';
import { decodeFlowBatch, decodeFlowBatchEncoded, decodeFlowsResponse, encodeFlowBatch, encodeFlowsResponse } from './codec.js';

export const PROTO_FILE = join(__dirname, '..', 'proto', 'observer.proto');

export const LOADER_OPTIONS: protoLoader.Options = { longs: Number, enums: String, defaults: true, oneofs: true };

let loaded: ProtoGrpcType | undefined;
let loadedEncoded: ProtoGrpcType | undefined;

/** The service with the per-flow message by the hand codec (codec.ts): the same bytes, a fraction of the CPU. */
export function observerProto(): ProtoGrpcType {
  loaded ??= load(decodeFlowBatch);
  return loaded;
}

/** The same service, its batches' flows left encoded (decodeFlowBatchEncoded): a relay's client. */
export function observerProtoEncoded(): ProtoGrpcType {
  loadedEncoded ??= load(decodeFlowBatchEncoded);
  return loadedEncoded;
}

function load(decodeBatch: (buf: Buffer) => unknown): ProtoGrpcType {
  const definition = protoLoader.loadSync(PROTO_FILE, LOADER_OPTIONS);
  const service = definition['weft.observer.v1.Observer'] as protoLoader.ServiceDefinition;
  Object.assign(service.GetFlows!, { responseSerialize: encodeFlowsResponse, responseDeserialize: decodeFlowsResponse });
  Object.assign(service.GetFlowBatches!, { responseSerialize: encodeFlowBatch, responseDeserialize: decodeBatch });
  return grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType;
}

/** Largest message either side accepts; a flow is a few hundred bytes, a node list of 5,000 nodes fits. */
export const MAX_MESSAGE_BYTES = 16 << 20;
