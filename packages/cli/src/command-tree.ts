/**
 * The command table as a tree of words: main.ts follows the command line down it to a command,
 * help.ts lists what is below a word. A word may be a command and have subcommands too (`weft
 * agent --config F`, `weft agent health`); a word without an entry only groups (`weft bpf`).
 */
import { COMMANDS, type CommandEntry } from './command-table.js';
import { UsageError } from './output.js';

export interface CommandNode {
  readonly words: readonly string[];
  readonly entry: CommandEntry | undefined;
  readonly children: ReadonlyMap<string, CommandNode>;
}

interface MutableNode {
  words: string[];
  entry: CommandEntry | undefined;
  children: Map<string, MutableNode>;
}

function build(entries: readonly CommandEntry[]): CommandNode {
  const root: MutableNode = { words: [], entry: undefined, children: new Map() };
  for (const e of entries) {
    let node = root;
    for (const w of e.words) {
      let child = node.children.get(w);
      if (!child) node.children.set(w, (child = { words: [...node.words, w], entry: undefined, children: new Map() }));
      node = child;
    }
    node.entry = e;
  }
  return root;
}

export const ROOT: CommandNode = build(Object.values(COMMANDS));

/** Every entry at or below a node, in table order. */
export function entriesBelow(node: CommandNode): CommandEntry[] {
  return (Object.values(COMMANDS) as CommandEntry[]).filter((e) => node.words.every((w, i) => e.words[i] === w));
}

/**
 * Follows the leading words of `argv` down the tree. The node may be one without an entry (a
 * group such as `weft bpf`): the caller shows its help or says it needs a subcommand. A word that
 * names no subcommand where one is expected is a usage error listing the valid ones.
 */
export function findCommand(argv: readonly string[]): { node: CommandNode; rest: string[] } {
  let node = ROOT;
  let i = 0;
  while (i < argv.length && node.children.has(argv[i]!)) node = node.children.get(argv[i++]!)!;
  const next = argv[i];
  const takesArgs = (node.entry?.args?.length ?? 0) > 0;
  if (next !== undefined && (node === ROOT || (!next.startsWith('-') && node.children.size > 0 && !takesArgs))) throw unknownCommand(node, next);
  return { node, rest: argv.slice(i) };
}

/** A group run without a subcommand. */
export function needsCommand(node: CommandNode): UsageError {
  return new UsageError(`weft ${node.words.join(' ')} needs a command: ${choices(node)} (see weft ${node.words.join(' ')} --help)`);
}

function unknownCommand(node: CommandNode, word: string): UsageError {
  const where = node === ROOT ? 'command' : `${node.words.join(' ')} command`;
  const help = ['weft', ...node.words, '--help'].join(' ');
  return new UsageError(`Unknown ${where} ${JSON.stringify(word)}: use ${choices(node)} (see ${help})`);
}

/** The subcommands of a node, the hidden ones apart: "up, down, exec or status (internal: forward, ...)". */
function choices(node: CommandNode): string {
  const shown: string[] = [];
  const hidden: string[] = [];
  for (const [word, child] of node.children) (entriesBelow(child).every((e) => e.hidden) ? hidden : shown).push(word);
  const list = shown.length > 1 ? `${shown.slice(0, -1).join(', ')} or ${shown.at(-1)}` : shown.join('');
  return hidden.length > 0 ? `${list} (internal: ${hidden.join(', ')})` : list;
}
