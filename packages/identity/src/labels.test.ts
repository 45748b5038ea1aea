import assert from 'node:assert/strict';
import { InvalidLabelError } from './errors.js';
import { CLUSTER_LABEL, LabelFilter, LabelSet, parseLabel, workloadLabels } from './labels.js';

describe('labels', () => {
  it('parses source:key=value with k8s as the default source', () => {
    assert.deepEqual({ ...parseLabel('app=web') }, { source: 'k8s', key: 'app', value: 'web' });
    assert.deepEqual({ ...parseLabel('container:tier=db') }, { source: 'container', key: 'tier', value: 'db' });
    assert.deepEqual({ ...parseLabel('k8s:app.kubernetes.io/name=api') }, { source: 'k8s', key: 'app.kubernetes.io/name', value: 'api' });
    assert.deepEqual({ ...parseLabel('reserved:host') }, { source: 'reserved', key: 'host', value: '' });
    assert.deepEqual({ ...parseLabel('k8s:flag') }, { source: 'k8s', key: 'flag', value: '' });
  });

  it('gives equal sets one canonical form regardless of order', () => {
    const a = LabelSet.parse(['k8s:tier=front', 'k8s:app=web']);
    const b = LabelSet.fromMap({ app: 'web', tier: 'front' });
    assert.equal(a.key, 'k8s:app=web;k8s:tier=front');
    assert.equal(a.key, b.key);
    assert.equal(LabelSet.fromCanonical(a.key).key, a.key);
  });

  it('rejects malformed labels, naming the label and the problem', () => {
    const cases: Array<[string[], RegExp]> = [
      [['k8s:app=we b'], /Invalid label "k8s:app=we b" \(label 1 of 1\): value "we b" must be at most 63 characters/],
      [['app=ok', '=x'], /\(label 2 of 2\): the key is empty/],
      [['K8S:app=x'], /source "K8S" must be 1-32 characters of \[a-z0-9-\]/],
      [['k8s:Bad_Prefix.io/x=y'], /key prefix "Bad_Prefix.io" must be a DNS subdomain/],
      [[`k8s:app=${'v'.repeat(64)}`], /value "v{64}" must be at most 63 characters/],
      [['reserved:nothing'], /"nothing" is not a reserved identity/],
      [['reserved:host=yes'], /reserved labels take no value/],
      [['app=a', 'app=b'], /key "k8s:app" has two values, "a" and "b"/],
      [[], /it is empty/],
    ];
    for (const [input, message] of cases) {
      assert.throws(() => LabelSet.parse(input), (err: unknown) => {
        assert.ok(err instanceof InvalidLabelError, `${input}: ${String(err)}`);
        assert.equal(err.code, 'WEFT_ERR_IDENTITY_INVALID_LABEL');
        assert.match(err.message, message);
        return true;
      });
    }
  });

  it('accepts only canonical text from storage', () => {
    assert.throws(() => LabelSet.fromCanonical('k8s:tier=front;k8s:app=web'), /not in canonical form/);
    assert.throws(() => LabelSet.fromCanonical(''), /empty/);
    assert.throws(() => LabelSet.fromCanonical('\u0000garbage'), InvalidLabelError);
  });

  it('filters labels that differ between replicas, keeping cluster and namespace', () => {
    const set = LabelSet.fromMap({ app: 'web', 'pod-template-hash': '5d8f', 'controller-revision-hash': 'abc', [CLUSTER_LABEL]: 'east' });
    assert.equal(new LabelFilter().apply(set).key, 'k8s:app=web;k8s:weft.io/cluster=east');
    const onlyApp = new LabelFilter({ include: [/^app$/] });
    assert.equal(onlyApp.apply(LabelSet.fromMap({ app: 'web', tier: 'x', [CLUSTER_LABEL]: 'east' })).key, 'k8s:app=web;k8s:weft.io/cluster=east');
  });

  it('builds workload labels with namespace, namespace labels and cluster', () => {
    const set = workloadLabels({ cluster: 'east', namespace: 'shop', labels: { app: 'cart', 'pod-template-hash': 'x1' }, namespaceLabels: { team: 'payments' } });
    assert.equal(
      set.key,
      'k8s:app=cart;k8s:io.kubernetes.pod.namespace=shop;k8s:weft.io.namespace.labels.team=payments;k8s:weft.io/cluster=east',
    );
  });
});
