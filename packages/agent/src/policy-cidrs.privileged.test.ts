/**
 * An ipBlock selects pod addresses too (Kubernetes NetworkPolicy), on the real datapath: the
 * ipcache gives a pod's address the pod's identity, weft_policy_cidrs the CIDR identity of the
 * longest policy CIDR containing it, and the verdict weighs both (bpf/lib/policy.h). Crafted
 * packets through bpf_lxc.o's from_container and to_container (BPF_PROG_TEST_RUN).
 */
import { silentLogger } from '@weft/common';
import { encodePolicyCidr, ipv4ToInt, type BpfMap } from '@weft/datapath';
import { PolicyMapWriter } from './policy-map-writer.js';
import { allow, deny, expectDrop, expectPass, frame, lxcSuite, peer, slot, TCP, UDP } from './testing/lxc-programs.js';

const A = '10.0.0.1'; // the local endpoint under test
const POD = '10.1.0.5'; // a pod inside the ipBlock 10.1.0.0/16
const POD_EXCEPT = '10.1.200.9'; // a pod inside its except, 10.1.200.0/24
const POD_OUT = '10.2.0.7'; // a pod outside it
const ID_POD = 70_001;
const ID_POD_EXCEPT = 70_002;
const ID_POD_OUT = 70_003;
const CIDR_BLOCK = 0x100;
const CIDR_EXCEPT = 0x101;

function policyCidr(map: BpfMap, cidr: string, identity: number): void {
  const [addr, bits] = cidr.split('/');
  const { key, value } = encodePolicyCidr(ipv4ToInt(addr!), Number(bits), identity);
  map.update(key, value);
}

describe('an ipBlock selects pod addresses too (root, real programs)', function () {
  this.timeout(30_000);
  const suite = lxcSuite('wtpc');

  /** The three pods in the ipcache under their own identities; the policy CIDRs only when `cidrs`. */
  function setup(cidrs = true) {
    const dp = suite.load();
    peer(dp.map('ipcache'), POD, ID_POD);
    peer(dp.map('ipcache'), POD_EXCEPT, ID_POD_EXCEPT);
    peer(dp.map('ipcache'), POD_OUT, ID_POD_OUT);
    if (cidrs) {
      policyCidr(dp.map('policyCidrs'), '10.1.0.0/16', CIDR_BLOCK);
      policyCidr(dp.map('policyCidrs'), '10.1.200.0/24', CIDR_EXCEPT);
    }
    const writer = new PolicyMapWriter({ endpoints: dp.map('endpoints'), policy: dp.map('policy') }, silentLogger());
    return { dp, writer };
  }

  it('admits a pod whose address is in an allowed ipBlock, in both directions; not one in its except, outside it, or on another port', () => {
    const { dp, writer } = setup();
    // "egress to 10.1.0.0/16 except 10.1.200.0/24 on TCP 80; ingress from it on TCP": the resolver selects the block's identity, not the except's.
    writer.program(slot(1, A, { egressEnforced: true, ingressEnforced: true }), [allow(true, CIDR_BLOCK, TCP, 80), allow(false, CIDR_BLOCK, TCP)], 1);
    expectPass(dp.run('from_container', frame(A, POD, TCP, 40000, 80)), 'A -> a pod in the block, port 80');
    expectDrop(dp.run('from_container', frame(A, POD, TCP, 40001, 81)), 'POLICY_DENIED', 'A -> the same pod, port 81');
    expectDrop(dp.run('from_container', frame(A, POD, UDP, 40002, 80)), 'POLICY_DENIED', 'A -> the same pod, UDP 80');
    expectDrop(dp.run('from_container', frame(A, POD_EXCEPT, TCP, 40003, 80)), 'POLICY_DENIED', 'A -> a pod in the except');
    expectDrop(dp.run('from_container', frame(A, POD_OUT, TCP, 40004, 80)), 'POLICY_DENIED', 'A -> a pod outside the block');
    expectPass(dp.run('to_container', frame(POD, A, TCP, 5555, 22)), 'a pod in the block -> A');
    expectDrop(dp.run('to_container', frame(POD_EXCEPT, A, TCP, 5555, 22)), 'POLICY_DENIED', 'a pod in the except -> A');
  });

  it('needs the CIDR in weft_policy_cidrs: without it the pod is only its own identity', () => {
    const { dp, writer } = setup(false);
    writer.program(slot(1, A, { egressEnforced: true }), [allow(true, CIDR_BLOCK, TCP)], 1);
    expectDrop(dp.run('from_container', frame(A, POD, TCP, 40000, 80)), 'POLICY_DENIED', 'A -> a pod in the block, the CIDR unknown to the datapath');
    policyCidr(dp.map('policyCidrs'), '10.1.0.0/16', CIDR_BLOCK);
    expectPass(dp.run('from_container', frame(A, POD, TCP, 40001, 80)), 'the same, once the CIDR is written');
  });

  it('lets a deny on an ipBlock beat an allow of the pod\'s own identity, and a deny of the identity beat an allowed ipBlock', () => {
    const { dp, writer } = setup();
    writer.program(slot(1, A, { egressEnforced: true, ingressEnforced: true }), [allow(true, ID_POD, TCP), deny(true, CIDR_BLOCK, TCP, 443), allow(false, CIDR_BLOCK), deny(false, ID_POD)], 1);
    expectPass(dp.run('from_container', frame(A, POD, TCP, 40000, 80)), 'A -> the pod, port 80 (its identity allowed, no deny)');
    expectDrop(dp.run('from_container', frame(A, POD, TCP, 40001, 443)), 'POLICY_DENY_RULE', 'A -> the pod, port 443 (the block denied there)');
    expectDrop(dp.run('to_container', frame(POD, A, TCP, 5555, 22)), 'POLICY_DENY_RULE', 'the pod -> A (its identity denied, the block allowed)');
    peer(dp.map('ipcache'), '10.1.0.6', 70_004);
    expectPass(dp.run('to_container', frame('10.1.0.6', A, TCP, 5555, 22)), 'another pod of the block -> A');
  });

  it('re-checks an established connection against the ipBlock when the policy changes', () => {
    const { dp, writer } = setup();
    const a = slot(1, A, { egressEnforced: true });
    writer.program(a, [allow(true, CIDR_BLOCK, TCP)], 1);
    expectPass(dp.run('from_container', frame(A, POD, TCP, 40000, 80)), 'a connection to a pod of the block');
    expectPass(dp.run('from_container', frame(A, POD, TCP, 40000, 80)), 'the established connection');
    writer.program(a, [allow(true, ID_POD_OUT, TCP)], 2);
    expectDrop(dp.run('from_container', frame(A, POD, TCP, 40000, 80)), 'POLICY_REVOKED', 'the same connection once the block is no longer allowed');
  });

  it('takes the longest policy CIDR: a rule naming the outer block selects an address in a nested one through the resolver, which gives it both identities', () => {
    const { dp, writer } = setup();
    // The resolver gives a rule naming 10.1.0.0/16 (no except) both identities, since the /24 lies inside it.
    writer.program(slot(1, A, { egressEnforced: true }), [allow(true, CIDR_BLOCK, TCP), allow(true, CIDR_EXCEPT, TCP)], 1);
    expectPass(dp.run('from_container', frame(A, POD_EXCEPT, TCP, 40000, 80)), 'A -> a pod in the nested /24');
    writer.program(slot(1, A, { egressEnforced: true }), [allow(true, CIDR_BLOCK, TCP)], 2);
    expectDrop(dp.run('from_container', frame(A, POD_EXCEPT, TCP, 40001, 80)), 'POLICY_DENIED', 'the /24\'s own identity not allowed: its pods are not');
  });
});
