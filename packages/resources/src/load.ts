/** Reading resource files for `weft apply -f` / `weft delete -f`: YAML or JSON in UTF-8, one or many documents. */
import { readFileSync } from 'node:fs';
import { InvalidResourceError } from './errors.js';
import type { Resource } from './types.js';
import { decodeUtf8 } from './utf8.js';
import { validateResource } from './validate.js';
import { parseYamlDocuments } from './yaml.js';

/** Parses and validates every document of every file; throws on the first invalid one. */
export function loadResourceFiles(files: readonly string[], cluster: string): Resource[] {
  const out: Resource[] = [];
  for (const file of files) {
    let bytes: Buffer;
    try {
      bytes = file === '-' ? readFileSync(0) : readFileSync(file);
    } catch (err) {
      throw new InvalidResourceError(file, `cannot read the file: ${(err as Error).message}`, { cause: err });
    }
    const text = decodeUtf8(bytes, file === '-' ? '(stdin)' : file);
    for (const doc of parseYamlDocuments(text, file)) {
      const v = doc.value as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } };
      const label = typeof v?.kind === 'string' ? ` (${v.kind} ${typeof v.metadata?.namespace === 'string' ? `${v.metadata.namespace}/` : ''}${String(v.metadata?.name ?? '?')})` : '';
      out.push(validateResource(doc.value, `#${doc.index}${label} at ${file}:${doc.line}`, cluster));
    }
  }
  if (out.length === 0) throw new InvalidResourceError(files.join(', '), 'no documents found');
  return out;
}
