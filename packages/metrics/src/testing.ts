/** Test support: a strict reader of what a metrics endpoint serves, a scrape of one, and its check against docs/metrics.md. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import type { Family } from './exposition.js';
export { ExpositionError } from './errors.js';
export { parseExposition, sampleValue, type Family, type Sample, type MetricType } from './exposition.js';

/** GET http://host:port/metrics: the status, the Content-Type and the body. */
export function scrape(address: { host: string; port: number }, path = '/metrics', method = 'GET'): Promise<{ status: number; contentType: string; body: string }> {
  return new Promise((resolve, reject) => {
    const host = address.host === '0.0.0.0' ? '127.0.0.1' : address.host;
    const req = request({ host, port: address.port, path, method, timeout: 10_000, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`scrape of ${host}:${address.port}${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** The metrics a section of docs/metrics.md (`## <section>`) lists in its tables: name -> type. */
export function documentedMetrics(docPath: string, section: string): Map<string, string> {
  const text = readFileSync(docPath, 'utf8').split(/^## /m).find((s) => s.startsWith(`${section}\n`));
  assert.ok(text, `${docPath} has a section "## ${section}"`);
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^\| `(weft_[a-z0-9_]+)` \| (counter|gauge|histogram) \|/gm)) out.set(m[1]!, m[2]!);
  assert.ok(out.size > 5, `${docPath} lists the metrics of ${section}`);
  return out;
}

/**
 * What a component serves is exactly what its docs list, with the same types (the process's own
 * weft_process_* and weft_nodejs_* aside); every family has a HELP line and every sample the
 * constant labels.
 */
export function checkDocumented(families: Map<string, Family>, documented: Map<string, string>, constantLabels: Record<string, string>): void {
  const served = [...families.values()].filter((f) => !/^weft_(process|nodejs)_/.test(f.name));
  assert.deepEqual(served.map((f) => `${f.name} ${f.type}`).sort(), [...documented].map(([n, t]) => `${n} ${t}`).sort(), 'what is served is what docs/metrics.md lists');
  for (const f of families.values()) {
    assert.ok(f.help !== undefined && f.help.length > 10, `${f.name} has a HELP line`);
    for (const s of f.samples) for (const [k, v] of Object.entries(constantLabels)) assert.equal(s.labels[k], v, `${s.name} ${JSON.stringify(s.labels)} has ${k}=${v}`);
  }
}
