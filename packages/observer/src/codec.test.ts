import assert from 'node:assert/strict';
import * as protoLoader from '@grpc/proto-loader';
import { decodeFlowBatch, decodeFlowBatchEncoded, decodeFlowsResponse, encodeFlowBatch, encodeFlowsResponse, type EncodedFlow } from './codec.js';
import { LOADER_OPTIONS, PROTO_FILE } from './proto.js';
import { randomFlowSource } from './testing.js';

describe('the GetFlowsResponse codec', () => {
  // protobufjs by reflection, as proto-loader serializes without our codec: the reference.
  const reference = (protoLoader.loadSync(PROTO_FILE, LOADER_OPTIONS)['weft.observer.v1.Observer'] as protoLoader.ServiceDefinition).GetFlows!;
  const randomFlow = randomFlowSource(7, ['', 'a', 'web-7f9c', 'k8s:app=web', 'weft-conntest', 'ünïcode/名前', 'x'.repeat(300)]);

  // protobufjs writes a field set to its default too; proto3 leaves it out, as we do. Both are the
  // same message: what matters is that each side reads the other's bytes as the same object.
  const sameBothWays = (message: object, what: string): void => {
    const ours = encodeFlowsResponse(message as never);
    const theirs = reference.responseSerialize(message) as Buffer;
    const expected = reference.responseDeserialize(theirs);
    assert.deepEqual(reference.responseDeserialize(ours), expected, `${what}: protobufjs reads our bytes`);
    assert.deepEqual(decodeFlowsResponse(theirs), expected, `${what}: we read protobufjs's bytes`);
    assert.ok(ours.length <= theirs.length, `${what}: defaults left out`);
  };

  it('writes what protobufjs reads as the same message, and reads what protobufjs writes, for 2,000 random flows', () => {
    for (let i = 0; i < 2000; i++) {
      const f = randomFlow();
      sameBothWays({ flow: f, cluster: f.cluster, node: f.node, time: f.time }, `flow #${i}`);
    }
  });

  it('does the same for lost events and node states', () => {
    for (const message of [
      { lostEvents: { source: 'STREAM_QUEUE', numEventsLost: 12345, cluster: 'c1', node: 'n1' }, cluster: 'c1', node: 'n1' },
      { lostEvents: { source: 'BPF_RING_BUFFER', numEventsLost: 2 ** 40, cluster: '', node: '' } },
      { nodeStatus: { state: 'NODE_UNAVAILABLE', cluster: 'c2', node: 'n9', message: 'connect ECONNREFUSED' }, cluster: 'c2', node: 'n9' },
    ]) sameBothWays(message, JSON.stringify(message));
  });

  it('carries a batch of responses as protobufjs does', () => {
    const batchRef = (protoLoader.loadSync(PROTO_FILE, LOADER_OPTIONS)['weft.observer.v1.Observer'] as protoLoader.ServiceDefinition).GetFlowBatches!;
    const flows = Array.from({ length: 50 }, randomFlow);
    const batch = { responses: [...flows.map((f) => ({ flow: f, cluster: f.cluster, node: f.node, time: f.time })), { lostEvents: { source: 'STREAM_QUEUE', numEventsLost: 3, cluster: 'c1', node: 'n1' } }] };
    const expected = batchRef.responseDeserialize(batchRef.responseSerialize(batch));
    assert.deepEqual(batchRef.responseDeserialize(encodeFlowBatch(batch as never)), expected);
    assert.deepEqual(decodeFlowBatch(batchRef.responseSerialize(batch) as Buffer), expected);
    assert.deepEqual(decodeFlowBatch(encodeFlowBatch({ responses: [] })), { responses: [] });
  });

  it('passes flows on encoded: the bytes as they came, the time read, lost events decoded', () => {
    const flows = Array.from({ length: 30 }, randomFlow);
    const batch = { responses: [...flows.map((f) => ({ flow: f, cluster: f.cluster, node: f.node, time: f.time })), { lostEvents: { source: 'STREAM_QUEUE', numEventsLost: 3, cluster: 'c1', node: 'n1' } }] };
    const bytes = encodeFlowBatch(batch as never);
    const { responses } = decodeFlowBatchEncoded(bytes);
    assert.deepEqual(responses.slice(0, 30).map((r) => (r as EncodedFlow).time), flows.map((f) => f.time));
    assert.equal((responses[30] as { lostEvents: { numEventsLost: number } }).lostEvents.numEventsLost, 3);
    // Passed on unchanged: the same batch as if every flow had been decoded and encoded again.
    assert.deepEqual(encodeFlowBatch({ responses: responses as never }), bytes);
    assert.deepEqual(decodeFlowsResponse(encodeFlowsResponse(responses[0] as EncodedFlow)), decodeFlowBatch(bytes).responses[0]);
  });

  it('reads what another encoder may write: fields out of order, unknown fields skipped', () => {
    const f = randomFlow();
    const bytes = reference.responseSerialize({ flow: f, cluster: 'c9', node: 'n9' }) as Buffer;
    // An unknown field (number 99, a string) before the rest: skipped.
    const unknown = Buffer.from([0x9a, 0x06, 0x03, 0x61, 0x62, 0x63]);
    assert.deepEqual(decodeFlowsResponse(Buffer.concat([unknown, bytes])), reference.responseDeserialize(bytes));
  });
});
