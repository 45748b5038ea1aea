/** Multi-document YAML to plain objects, with errors that give the line. */
import { parseAllDocuments } from 'yaml';
import { InvalidResourceError } from './errors.js';

export interface SourceDocument {
  /** 1-based index within the file. */
  index: number;
  /** 1-based line where the document starts. */
  line: number;
  value: unknown;
}

export function parseYamlDocuments(text: string, file: string): SourceDocument[] {
  const lineOf = (offset: number): number => text.slice(0, offset).split('\n').length;
  const out: SourceDocument[] = [];
  parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true }).forEach((doc, i) => {
    if ('errors' in doc && doc.errors.length > 0) {
      const e = doc.errors[0]!;
      throw new InvalidResourceError(`#${i + 1} in ${file}`, `YAML syntax error at line ${e.linePos?.[0]?.line ?? '?'}: ${e.message.split('\n')[0]}`);
    }
    const value = doc.toJS({ maxAliasCount: 100 }) as unknown;
    if (value === null || value === undefined) return; // an empty document (a trailing ---)
    const start = (doc.contents as { range?: [number, number, number] } | null)?.range?.[0] ?? doc.range?.[0] ?? 0;
    out.push({ index: i + 1, line: lineOf(start), value });
  });
  return out;
}
