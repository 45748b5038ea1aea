import assert from 'node:assert/strict';
import { RelayConfigError } from './errors.js';
import { validateRelayConfig } from './relay-config.js';

describe('relay config', () => {
  const ok = { cluster: 'c1', socket: '/run/weft/relay.sock', peers: ['10.99.1.11:4244'], agentTls: { ca: '/a/ca.crt', cert: '/a/r.crt', key: '/a/r.key' } };

  it('fills in defaults', () => {
    const c = validateRelayConfig(ok);
    assert.equal(c.refreshSeconds, 10);
    assert.equal(c.sortWindowMs, 200);
    assert.equal(c.metrics, undefined);
    assert.deepEqual(validateRelayConfig({ ...ok, metrics: { listen: '0.0.0.0:9966' } }).metrics, { listen: '0.0.0.0:9966' });
  });

  it('reads ${NAME} in peers from the environment', () => {
    assert.deepEqual(validateRelayConfig({ ...ok, peers: ['${WEFT_NODE_IP}:4244'] }, 'r', { WEFT_NODE_IP: '10.0.0.7' }).peers, ['10.0.0.7:4244']);
    assert.throws(() => validateRelayConfig({ ...ok, peers: ['${WEFT_NODE_IP}:4244'] }, 'r', {}), /peers\[0\]: "\$\{WEFT_NODE_IP\}:4244": environment variable WEFT_NODE_IP is not set/);
  });

  it('names the field and what is wrong', () => {
    const cases: Array<[object, RegExp]> = [
      [{ ...ok, peers: [] }, /peers: must list at least one/],
      [{ ...ok, peers: ['10.99.1.11'] }, /peers\[0\]: "10\.99\.1\.11" is not host:port/],
      [{ ...ok, agentTls: { ca: 'ca.crt', cert: '/c', key: '/k' } }, /agentTls\.ca: "ca\.crt" must be an absolute path/],
      [{ ...ok, listen: '0.0.0.0:4245' }, /listen: needs tls/],
      [{ ...ok, socket: undefined }, /needs socket or listen/],
      [{ ...ok, bogus: 1 }, /bogus: is not a relay setting/],
      [{ ...ok, cluster: 'C1' }, /cluster: "C1" must be/],
      [{ ...ok, metrics: '0.0.0.0:9966' }, /metrics: must be an object \{listen\}/],
      [{ ...ok, metrics: { listen: 'relay:9966' } }, /metrics\.listen: "relay:9966" must be IPv4:port/],
      [{ ...ok, metrics: { listen: '0.0.0.0:9966', path: '/m' } }, /metrics\.path: is not a key of metrics/],
    ];
    for (const [raw, message] of cases) assert.throws(() => validateRelayConfig(raw, 'relay.json'), (e: Error) => e instanceof RelayConfigError && /^Invalid relay configuration relay\.json: /.test(e.message) && message.test(e.message), message.source);
  });
});
