/** `weft observe`: flows from every node's agent, filtered, as a table or JSON lines. */
import { parseArgs } from 'node:util';
import type { Flow } from '@weft/agent';
import { agentsFor } from '../context.js';
import { parseFormat, UsageError } from '../output.js';

export async function observe(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      cluster: { type: 'string' }, node: { type: 'string' }, agent: { type: 'string' }, output: { type: 'string', short: 'o' },
      follow: { type: 'boolean', short: 'f', default: false }, pod: { type: 'string' }, namespace: { type: 'string' }, label: { type: 'string' },
      verdict: { type: 'string' }, identity: { type: 'string' }, last: { type: 'string', default: '50' },
    },
  });
  const format = parseFormat(values.output);
  if (values.verdict && !['FORWARDED', 'DROPPED', 'AUDIT'].includes(values.verdict.toUpperCase())) throw new UsageError(`Invalid --verdict ${JSON.stringify(values.verdict)}: use FORWARDED, DROPPED or AUDIT`);
  const q = new URLSearchParams();
  for (const k of ['pod', 'namespace', 'label', 'verdict', 'identity'] as const) if (values[k]) q.set(k, values[k]!);
  q.set('limit', values.last!);
  if (values.follow) q.set('follow', '1');
  const print = (f: Flow): void => {
    if (format === 'json') return void process.stdout.write(JSON.stringify(f) + '\n');
    const side = (e: Flow['source']): string => `${e.pod ? `${e.namespace}/${e.pod}` : e.ip}${e.port ? `:${e.port}` : ''} (${e.identity})`;
    process.stdout.write(`${f.time}  ${f.node}  ${side(f.source)} -> ${side(f.destination)}  ${f.protocol}  ${f.verdict}${f.dropReason ? ` (${f.dropReason})` : ''}${f.related ? ' related' : ''}${f.rule ? `  rule ${f.rule}` : ''}\n`);
  };
  const ac = new AbortController();
  process.once('SIGINT', () => ac.abort());
  const agents = agentsFor(values);
  const collected: Flow[] = [];
  await Promise.all(agents.map(({ client }) => client.stream(`/v1/flows?${q}`, (item) => (values.follow ? print(item as Flow) : collected.push(item as Flow)), ac.signal)));
  collected.sort((a, b) => (a.time < b.time ? -1 : 1)).forEach(print);
}
