import assert from 'node:assert/strict';
import { restoreInput, serviceRules, type EndpointSliceView, type KubeServiceView } from './service-proxy.js';

const svc = (name: string, clusterIP: string, ports: KubeServiceView['spec']['ports']): KubeServiceView => ({ metadata: { name, namespace: 'kube-system' }, spec: { clusterIP, ports } });
const slice = (service: string, ports: EndpointSliceView['ports'], endpoints: EndpointSliceView['endpoints'], addressType = 'IPv4'): EndpointSliceView => ({ metadata: { namespace: 'kube-system', labels: { 'kubernetes.io/service-name': service } }, addressType, ports, endpoints });

describe('lab service proxy: rules from Services and EndpointSlices', () => {
  it('maps each ClusterIP port to the ready IPv4 endpoints of its slices, matching ports by name', () => {
    const rules = serviceRules(
      [svc('weft-etcd', '10.96.0.20', [{ name: 'client', port: 9379 }, { name: 'issuer', port: 9382 }]), svc('headless', 'None', [{ port: 80 }]), svc('dns', '10.96.0.10', [{ name: 'dns', port: 53, protocol: 'UDP' }, { name: 'sctp', port: 9, protocol: 'SCTP' }])],
      [
        slice('weft-etcd', [{ name: 'client', port: 9379 }, { name: 'issuer', port: 9382 }], [{ addresses: ['10.99.1.12'], conditions: { ready: true } }, { addresses: ['10.99.1.11'] }, { addresses: ['10.99.1.13'], conditions: { ready: false } }]),
        slice('weft-etcd', [{ name: 'client', port: 9379 }], [{ addresses: ['fd00::1'] }], 'IPv6'),
        slice('dns', [{ name: 'dns', port: 5353, protocol: 'UDP' }], null),
      ],
    );
    assert.deepEqual(rules, [
      { service: 'kube-system/dns:dns', clusterIp: '10.96.0.10', port: 53, protocol: 'udp', endpoints: [] },
      { service: 'kube-system/weft-etcd:client', clusterIp: '10.96.0.20', port: 9379, protocol: 'tcp', endpoints: [{ ip: '10.99.1.11', port: 9379 }, { ip: '10.99.1.12', port: 9379 }] },
      { service: 'kube-system/weft-etcd:issuer', clusterIp: '10.96.0.20', port: 9382, protocol: 'tcp', endpoints: [{ ip: '10.99.1.11', port: 9382 }, { ip: '10.99.1.12', port: 9382 }] },
    ]);
  });

  it('writes one DNAT per endpoint, picked at random per connection, and rejects a Service without endpoints', () => {
    const text = restoreInput([
      { service: 'a/b:x', clusterIp: '10.96.0.20', port: 9379, protocol: 'tcp', endpoints: [{ ip: '10.99.1.11', port: 9379 }, { ip: '10.99.1.12', port: 9379 }, { ip: '10.99.1.13', port: 9379 }] },
      { service: 'a/c:y', clusterIp: '10.96.0.30', port: 53, protocol: 'udp', endpoints: [] },
    ]);
    const dnat = text.split('\n').filter((l) => l.includes('DNAT'));
    assert.deepEqual(dnat.map((l) => /probability ([\d.]+)/.exec(l)?.[1] ?? 'last'), ['0.3333333333', '0.5000000000', 'last']);
    assert.match(text, /-A WEFT-LAB-SERVICES -d 10\.96\.0\.30\/32 -p udp --dport 53 -m comment --comment "a\/c:y has no endpoints" -j REJECT/);
    assert.equal((text.match(/^COMMIT$/gm) ?? []).length, 2);
  });

  it('DNATs a NodePort arriving at a node\'s own address, and masquerades it when it goes on', () => {
    const text = restoreInput([{ service: 'kube-system/weft-clustermesh-apiserver:mesh', clusterIp: '10.96.0.40', port: 32379, protocol: 'tcp', nodePort: 32379, endpoints: [{ ip: '10.99.1.12', port: 32379 }] }]);
    assert.match(text, /^-A WEFT-LAB-NODEPORTS -p tcp --dport 32379 -m comment --comment "kube-system\/weft-clustermesh-apiserver:mesh nodePort" -j DNAT --to-destination 10\.99\.1\.12:32379$/m);
    assert.match(text, /^-A WEFT-LAB-POSTROUTING -p tcp -m conntrack --ctstate DNAT --ctorigdstport 32379 .* -j MASQUERADE$/m);
  });
});
