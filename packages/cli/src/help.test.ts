// The real command line (bin/weft.js, as npm links it), spawned: every command of the table answers
// --help with its own usage, a wrong subcommand or option is a usage error that says what is valid.
// Nothing here needs root, a lab or etcd: every command fails at its parse before doing anything.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { COMMANDS, GROUPS, type CommandEntry } from './command-table.js';
import { ROOT, type CommandNode } from './command-tree.js';

const WEFT = join(__dirname, '..', 'bin', 'weft.js');
const ENTRIES = Object.values(COMMANDS) as CommandEntry[];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** At most 8 at once: the per-command tests start theirs together (in `before`) and each awaits its own. */
let running = 0;
const waiting: Array<() => void> = [];
async function weft(args: string[]): Promise<Run> {
  if (running >= 8) await new Promise<void>((r) => waiting.push(r));
  running++;
  try {
    return await new Promise((resolve) => {
      execFile(process.execPath, [WEFT, ...args], { timeout: 20_000 }, (err, stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, stdout, stderr }));
    });
  } finally {
    running--;
    waiting.shift()?.();
  }
}

/** Words wrapped differently still match. */
const flat = (s: string): string => s.replace(/\s+/g, ' ');

function nodes(node: CommandNode = ROOT): CommandNode[] {
  return [node, ...[...node.children.values()].flatMap((c) => nodes(c))];
}

describe('weft --help', function () {
  this.timeout(60_000);

  it('prints the top-level usage from the table for weft, weft help, weft --help and weft -h', async () => {
    const all = await Promise.all([[], ['help'], ['--help'], ['-h']].map((a) => weft(a)));
    for (const r of all) assert.deepEqual([r.code, r.stderr], [0, '']);
    assert.ok(all.every((r) => r.stdout === all[0]!.stdout));
    const text = all[0]!.stdout;
    assert.match(text, /^Usage: weft COMMAND \[options\]/);
    // The groups in the table's order, every command that is not hidden under its own.
    const titles = Object.values(GROUPS).map((t) => text.indexOf(`\n${t}:\n`));
    assert.ok(titles.every((i, n) => i > 0 && (n === 0 || i > titles[n - 1]!)), `groups in order: ${titles.join(',')}`);
    for (const e of ENTRIES) {
      const listed = new RegExp(`^  ${e.id}( |$)`, 'm').test(text);
      assert.equal(listed, !e.hidden, `${e.id} ${e.hidden ? 'is hidden' : 'is missing'}`);
    }
  });

  const helps = new Map<string, Promise<Run[]>>();
  before(() => {
    for (const e of ENTRIES) helps.set(e.id, Promise.all([weft([...e.words, '--help']), weft([...e.words, '--help', '-o', 'json'])]));
  });

  for (const e of ENTRIES) {
    it(`weft ${e.id} --help: its usage, summary and options`, async () => {
      const [long, json] = (await helps.get(e.id)!) as [Run, Run];
      for (const r of [long, json]) assert.deepEqual([r.code, r.stderr], [0, ''], `weft ${e.id}`);
      const text = long.stdout;
      assert.ok(text.startsWith(`Usage: weft ${e.id} `), text);
      assert.ok(flat(text).includes(e.summary.slice(1)), 'the summary');
      for (const [name, o] of Object.entries(e.options)) assert.match(text, new RegExp(`^  ${o.short ? `-${o.short}, ` : ''}--${name}\\b`, 'm'), `option --${name}`);
      for (const a of e.args ?? []) assert.ok(text.includes(`\n  ${a.name} `), `argument ${a.name}`);
      const node = nodes().find((n) => n.entry === e)!;
      if (node.children.size > 0) {
        assert.match(text, /\nCommands:\n/);
        for (const word of node.children.keys()) assert.match(text, new RegExp(`^  ${word} `, 'm'), `subcommand ${word}`);
      }
      const parsed = JSON.parse(json.stdout) as { command: string; options: Array<{ name: string }> };
      assert.equal(parsed.command, `weft ${e.id}`);
      assert.deepEqual(parsed.options.map((o) => o.name), Object.keys(e.options));
    });
  }

  it('answers -h, --help anywhere before --, and weft help CMD alike (also where the health probes take their own entry)', async () => {
    for (const words of [['lab', 'up'], ['bpf', 'policy', 'get'], ['agent'], ['agent', 'health'], ['clustermesh-apiserver', 'health'], ['observe']]) {
      const runs = await Promise.all([weft([...words, '--help']), weft([...words, '-h']), weft(['help', ...words]), weft([...words, '--cluster', 'c1', '-h', '--liveness'])]);
      for (const r of runs) assert.deepEqual([r.code, r.stderr, r.stdout], [0, '', runs[0]!.stdout], words.join(' '));
      assert.ok(runs[0]!.stdout.startsWith(`Usage: weft ${words.join(' ')} `));
    }
  });

  it('lists the subcommands of a word that only groups them (weft bpf --help, weft help lab)', async () => {
    for (const node of nodes().filter((n) => n !== ROOT && !n.entry)) {
      const r = await weft([...node.words, '--help']);
      assert.deepEqual([r.code, r.stderr], [0, '']);
      assert.ok(r.stdout.startsWith(`Usage: weft ${node.words.join(' ')} COMMAND`));
      for (const e of ENTRIES.filter((x) => node.words.every((w, i) => x.words[i] === w))) {
        assert.match(r.stdout, new RegExp(`^  ${e.words.slice(node.words.length).join(' ')}( |$)`, 'm'), e.id);
      }
    }
    const lab = await weft(['help', 'lab']);
    assert.match(lab.stdout, /^Usage: weft lab COMMAND/);
  });

  it('leaves -h and --help after -- to the command run in a pod', async () => {
    const r = await weft(['lab', 'exec', 'c1/demo/nope', '--', 'ls', '--help']);
    assert.ok(!r.stdout.includes('Usage: weft lab exec'), r.stdout);
    assert.notEqual(r.code, 0);
  });
});

describe('weft usage errors', function () {
  this.timeout(60_000);

  it('an unknown command or subcommand: exit 2, naming it and the valid ones at that level', async () => {
    const top = await weft(['frobnicate']);
    assert.equal(top.code, 2);
    assert.match(top.stderr, /^weft: Unknown command "frobnicate": use lab, apply, delete, .* or demo \(see weft --help\) \[WEFT_ERR_USAGE\]\n$/);
    for (const node of nodes().filter((n) => n !== ROOT && n.children.size > 0)) {
      const r = await weft([...node.words, 'frobnicate']);
      assert.equal(r.code, 2, `weft ${node.words.join(' ')} frobnicate: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`Unknown ${node.words.join(' ')} command "frobnicate": use `));
      for (const word of node.children.keys()) assert.ok(r.stderr.includes(word), `${word} among the choices: ${r.stderr}`);
      assert.ok(r.stderr.includes(`(see weft ${node.words.join(' ')} --help)`));
    }
    // And with --help: still the error, not a help for something else.
    const help = await weft(['lab', 'frobnicate', '--help']);
    assert.equal(help.code, 2);
    assert.match(help.stderr, /Unknown lab command "frobnicate": use up, down, exec or status \(internal: forward, node-runtime, kube-proxy\)/);
  });

  it('a word that only groups, run alone: exit 2, listing its subcommands', async () => {
    const r = await weft(['bpf']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^weft: weft bpf needs a command: ipcache, nodes, lb or policy \(see weft bpf --help\)/);
  });

  const runs = new Map<string, Promise<Run>>();
  before(() => {
    for (const e of ENTRIES) runs.set(e.id, weft([...e.words, '--no-such-option']));
  });

  for (const e of ENTRIES) {
    it(`weft ${e.id} --no-such-option: exit 2, naming it and pointing at --help`, async () => {
      const r = await runs.get(e.id)!;
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stderr, `weft: Unknown option --no-such-option for weft ${e.id} (see weft ${e.id} --help) [WEFT_ERR_USAGE]\n`);
    });
  }
});
