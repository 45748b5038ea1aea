/**
 * Multi-document YAML to plain objects, with errors that give the line; and plain objects to a
 * multi-document stream (what `weft policy suggest` writes, read back by `weft apply`).
 *
 * Linear in the input: the parser records where every line starts as it reads (yaml's
 * LineCounter), and a document's line is a binary search in that list. (Counting the newlines
 * before each document from the start of the text made 20,000 documents take minutes.)
 */
import { LineCounter, parseAllDocuments, stringify } from 'yaml';
import { InvalidResourceError } from './errors.js';

export interface SourceDocument {
  /** 1-based index within the file. */
  index: number;
  /** 1-based line where the document starts. */
  line: number;
  value: unknown;
}

export function parseYamlDocuments(text: string, file: string): SourceDocument[] {
  const lines = new LineCounter();
  const out: SourceDocument[] = [];
  parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true, lineCounter: lines }).forEach((doc, i) => {
    if ('errors' in doc && doc.errors.length > 0) {
      const e = doc.errors[0]!;
      throw new InvalidResourceError(`#${i + 1} in ${file}`, `YAML syntax error at line ${e.linePos?.[0]?.line ?? '?'}: ${e.message.split('\n')[0]}`);
    }
    const value = doc.toJS({ maxAliasCount: 100 }) as unknown;
    if (value === null || value === undefined) return; // an empty document (a trailing ---)
    const start = (doc.contents as { range?: [number, number, number] } | null)?.range?.[0] ?? doc.range?.[0] ?? 0;
    out.push({ index: i + 1, line: Math.max(1, lines.linePos(start).line), value });
  });
  return out;
}

/**
 * Documents as one YAML stream, separated by `---`: keys in the objects' own order, no line folding
 * and no anchors, so equal documents always give the same bytes (the policy advisor's output is
 * compared byte for byte). Strings that would read back as another type (`"8080"`, `"true"`) are
 * quoted; everything round-trips through parseYamlDocuments.
 */
export function stringifyYamlDocuments(docs: readonly unknown[]): string {
  return docs.map((d) => stringify(d, { lineWidth: 0, aliasDuplicateObjects: false })).join('---\n');
}
