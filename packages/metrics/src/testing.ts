/** Test support: a strict reader of what a metrics endpoint serves, and a scrape of one. */
import { request } from 'node:http';
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
