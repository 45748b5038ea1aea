import assert from 'node:assert/strict';
import * as protoLoader from '@grpc/proto-loader';
import { seededRandom } from '@weft/common';
import { FlowFieldMaskError } from './errors.js';
import { compileFieldMask, FLOW_FIELD_PATHS } from './field-mask.js';
import { tcpFlagsFromByte } from './filter.js';
import { flowJson } from './format.js';
import { LOADER_OPTIONS, PROTO_FILE } from './proto.js';
import { makeFlow, randomFlows } from './testing.js';
import { formatTimestamp } from './time.js';

describe('flow field masks', () => {
  it('writes every field as flowJson has it, for 2,000 random flows, without a mask', () => {
    const all = compileFieldMask([]);
    for (const flow of randomFlows(11, 2000)) {
      const line = all(flow);
      assert.deepEqual(JSON.parse(line), JSON.parse(JSON.stringify(flowJson(flow))));
      assert.ok(!line.includes('\n'), 'one line');
    }
  });

  it('keeps only the masked fields, in the flow\'s order whatever the mask\'s', () => {
    const flow = makeFlow({ source: { namespace: 'shop', pod: 'web-1', labels: ['k8s:app=web'] }, destination: { pod: 'db-0', port: 5432 }, tcpFlags: tcpFlagsFromByte(0x12) });
    const line = compileFieldMask(['destination.port', 'verdict', 'source.pod', 'time', 'source.namespace', 'tcpFlags.SYN'])(flow);
    assert.equal(line, '{"time":"2023-11-14T22:13:20Z","verdict":"FORWARDED","source":{"namespace":"shop","pod":"web-1"},"destination":{"port":5432},"tcpFlags":{"SYN":true}}');
    // A whole message and one of its fields: the whole message.
    assert.deepEqual(JSON.parse(compileFieldMask(['source.pod', 'source'])(flow)), { source: flowJson(flow).source });
    // A message the flow does not have is null, as in flowJson.
    assert.equal(compileFieldMask(['destinationService.name', 'policy'])(flow), '{"destinationService":null,"policy":""}');
  });

  it('writes the time as formatTimestamp does (RFC 3339, nanoseconds without trailing zeros)', () => {
    const random = seededRandom(3);
    const time = compileFieldMask(['time']);
    for (const t of [{ seconds: 0, nanos: 0 }, { seconds: 1_790_000_000, nanos: 1 }, { seconds: 1_790_000_000, nanos: 999_999_999 }, { seconds: 1_790_000_000, nanos: 100_000_000 }, { seconds: 1_790_000_000, nanos: 120 }, null, ...Array.from({ length: 500 }, () => ({ seconds: 1_700_000_000 + Math.floor(random() * 1e8), nanos: Math.floor(random() * 1e9) }))]) {
      assert.equal(time(makeFlow({ time: t })), `{"time":${JSON.stringify(formatTimestamp(t))}}`, JSON.stringify(t));
    }
  });

  it('names every field of Flow, Endpoint, Service and TCPFlags in proto/observer.proto, and no other', () => {
    const definition = protoLoader.loadSync(PROTO_FILE, LOADER_OPTIONS);
    const fields = (name: string) => (definition[`weft.observer.v1.${name}`] as unknown as { type: { field: Array<{ name: string; typeName: string }> } }).type.field;
    const expected = fields('Flow').flatMap((f) => [f.name, ...(['Endpoint', 'Service', 'TCPFlags'].includes(f.typeName) ? fields(f.typeName).map((g) => `${f.name}.${g.name}`) : [])]);
    assert.deepEqual([...FLOW_FIELD_PATHS], expected);
  });

  it('refuses a path that names no field, saying which entry and what there is', () => {
    const bad: Array<[unknown[], RegExp]> = [
      [['verdict', 'sorce'], /fieldMask\[1\] "sorce": Flow has no field "sorce" \(time, cluster, node,/],
      [['source.podd'], /fieldMask\[0\] "source\.podd": Endpoint has no field "podd" \(ip, port, identity, namespace, pod, labels, cluster\)/],
      [['time.seconds'], /"time\.seconds": time is a timestamp \(RFC 3339 text\), it has no fields/],
      [['verdict.name'], /verdict is a string, it has no fields/],
      [['tcpFlags.syn'], /TCPFlags has no field "syn"/],
      [[''], /fieldMask\[0\] "": expected a field name or message\.field/],
      [['source.labels.0'], /expected a field name or message\.field/],
      [['constructor'], /Flow has no field "constructor"/],
      [[42], /fieldMask\[0\] 42/],
    ];
    for (const [mask, message] of bad) assert.throws(() => compileFieldMask(mask as string[]), (e: Error) => e instanceof FlowFieldMaskError && e.code === 'WEFT_ERR_FLOW_FIELD_MASK' && message.test(e.message), JSON.stringify(mask));
  });
});
