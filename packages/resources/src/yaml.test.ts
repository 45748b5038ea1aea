import assert from 'node:assert/strict';
import { parseYamlDocuments, stringifyYamlDocuments } from './yaml.js';

describe('YAML documents', () => {
  const docs = [
    { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'a', namespace: 'shop' }, spec: { podSelector: {}, ports: [{ protocol: 'TCP', port: 8080 }] } },
    { kind: 'WeftNetworkPolicy', spec: { port: '8080', flag: 'true', empty: [], long: 'x'.repeat(200) } },
  ];

  it('writes a stream separated by --- that reads back as the same documents, strings staying strings', () => {
    const text = stringifyYamlDocuments(docs);
    assert.equal(text.split('\n---\n').length, 2);
    assert.deepEqual(parseYamlDocuments(text, 'x.yaml').map((d) => d.value), docs);
    assert.ok(!text.includes('\n      x'), 'no line folding');
  });

  it('gives the same bytes for equal documents, and nothing for none', () => {
    assert.equal(stringifyYamlDocuments(structuredClone(docs)), stringifyYamlDocuments(docs));
    assert.equal(stringifyYamlDocuments([]), '');
  });

  it('writes a shared object twice rather than as an alias', () => {
    const shared = { app: 'web' };
    const text = stringifyYamlDocuments([{ a: shared, b: shared }]);
    assert.ok(!text.includes('&') && !text.includes('*'), text);
  });
});
