import assert from 'node:assert/strict';
import { FlowFilterError } from './errors.js';
import { compileFlowFilters, parseTcpFlags, tcpFlagsFromByte } from './filter.js';
import { makeFlow } from './testing.js';

describe('flow filters', () => {
  const web = makeFlow({ source: { namespace: 'shop', pod: 'web-1', identity: 300, labels: ['k8s:app=web', 'k8s:weft.io/cluster=c1'], cluster: 'c1', ip: '10.101.1.5', port: 40000 }, destination: { namespace: 'shop', pod: 'db-0', identity: 301, labels: ['k8s:app=db'], ip: '10.101.2.7', port: 5432 }, tcpFlags: tcpFlagsFromByte(0x02) });
  const drop = makeFlow({ verdict: 'DROPPED', dropReason: 'POLICY_DENIED', dropReasonCode: 1, protocol: 'UDP', node: 'c2-node3', cluster: 'c2', encrypted: true, source: { ip: '10.99.255.250' }, destination: { namespace: 'gs', pod: 'echo', port: 53 } });

  const passes = (allow: object[], deny: object[] = []) => [web, drop].filter(compileFlowFilters(allow, deny));

  it('passes everything without filters', () => assert.equal(passes([]).length, 2));

  it('ANDs the fields of a filter and ORs the values of a field and the filters of a list', () => {
    assert.deepEqual(passes([{ sourcePod: ['shop/web-1'], destinationPort: [5432] }]), [web]);
    assert.deepEqual(passes([{ sourcePod: ['shop/web-1'], destinationPort: [80] }]), []);
    assert.deepEqual(passes([{ destinationPort: [80, 53] }]), [drop]);
    assert.deepEqual(passes([{ verdict: ['DROPPED'] }, { sourceNamespace: ['shop'] }]), [web, drop]);
  });

  it('removes what a deny filter matches', () => {
    assert.deepEqual(passes([], [{ verdict: ['FORWARDED'] }]), [drop]);
    assert.deepEqual(passes([{ protocol: ['tcp', 'udp'] }], [{ node: ['c2-*'] }]), [web]);
  });

  it('matches pods by namespace/, namespace/pod, pod and a trailing *', () => {
    assert.deepEqual(passes([{ sourcePod: ['shop/'] }]), [web]);
    assert.deepEqual(passes([{ destinationPod: ['db-0'] }]), [web]);
    assert.deepEqual(passes([{ destinationPod: ['shop/db*'] }]), [web]);
    assert.deepEqual(passes([{ destinationPod: ['shop/db'] }]), []);
  });

  it('matches label selectors with or without the source', () => {
    assert.deepEqual(passes([{ sourceLabel: ['app=web'] }]), [web]);
    assert.deepEqual(passes([{ sourceLabel: ['k8s:app=web,weft.io/cluster=c1'] }]), [web]);
    assert.deepEqual(passes([{ sourceLabel: ['app!=web'] }]), [drop]);
    assert.deepEqual(passes([{ destinationLabel: ['!app'] }]), [drop]);
    assert.deepEqual(passes([{ destinationLabel: ['app'] }]), [web]);
  });

  it('matches addresses and CIDRs, identities, clusters, drop reasons, encryption and TCP flags', () => {
    assert.deepEqual(passes([{ sourceIp: ['10.99.0.0/16'] }]), [drop]);
    assert.deepEqual(passes([{ destinationIp: ['10.101.2.7'] }]), [web]);
    assert.deepEqual(passes([{ sourceIdentity: [300] }]), [web]);
    assert.deepEqual(passes([{ sourceCluster: ['c1'] }]), [web]);
    assert.deepEqual(passes([{ cluster: ['c2'] }]), [drop]);
    assert.deepEqual(passes([{ dropReason: ['policy_denied'] }]), [drop]);
    assert.deepEqual(passes([{ encrypted: [true] }]), [drop]);
    assert.deepEqual(passes([{ encrypted: [false] }]), [web]);
    assert.deepEqual(passes([{ tcpFlags: [parseTcpFlags('f', 'SYN')] }]), [web]);
    assert.deepEqual(passes([{ tcpFlags: [parseTcpFlags('f', 'SYN,ACK')] }]), []);
  });

  it('rejects a bad value naming the filter, the field and the value', () => {
    const bad: Array<[unknown, RegExp]> = [
      [{ sourceIp: ['10.1.2.300'] }, /allow\[0\]\.sourceIp "10\.1\.2\.300"/],
      [{ destinationPort: [70000] }, /destinationPort 70000: a port is 0-65535/],
      [{ verdict: ['MAYBE'] }, /verdict "MAYBE": use one of FORWARDED, DROPPED, AUDIT/],
      [{ sourceLabel: ['app=web\nx'] }, /sourceLabel/],
      [{ node: ['c*1'] }, /"\*" is allowed only at the end/],
      [{ destinationService: ['web'] }, /use namespace\/name/],
      // What a filter read from a file could say, which a request decoded from protobuf cannot.
      [{ sourcePods: ['shop/'] }, /allow\[0\]\.sourcePods \["shop\/"\]: is not a flow filter field \(sourcePod, destinationPod,/],
      [{ sourcePod: 'shop/' }, /allow\[0\]\.sourcePod "shop\/": must be a list of values/],
      [{ sourceIdentity: ['300'] }, /sourceIdentity "300": an identity is an integer/],
      [{ encrypted: ['true'] }, /encrypted "true": expected true or false/],
      ['verdict=DROPPED', /allow\[0\] "verdict=DROPPED": a filter is an object of fields/],
    ];
    for (const [filter, message] of bad) assert.throws(() => compileFlowFilters([filter as object]), (e: Error) => e instanceof FlowFilterError && message.test(e.message), JSON.stringify(filter));
    // A configuration file's names for the lists, so the error points at what the user wrote.
    assert.throws(() => compileFlowFilters([], [{ verdict: ['NOPE'] } as object], { allow: 'allowList', deny: 'denyList' }), (e: Error) => e instanceof FlowFilterError && e.field === 'denyList[0].verdict' && e.value === 'NOPE');
    assert.throws(() => compileFlowFilters({} as never), /allow {}: must be a list of filters/);
    assert.throws(() => parseTcpFlags('--tcp-flags', 'SYN,FOO'), /unknown TCP flag "FOO"/);
  });
});
