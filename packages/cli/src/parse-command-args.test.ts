import assert from 'node:assert/strict';
import { parseArgs } from 'node:util';
import type { CommandSpec } from './command-table.js';
import { UsageError } from './output.js';
import { parseCommandArgs, usageErrorFor } from './parse-command-args.js';

const SPEC = {
  id: 'thing make',
  words: ['thing', 'make'],
  group: 'inspect',
  summary: 'make a thing',
  usage: ['NAME [SIZE] [--count N] [-f FILE]... [--dry-run]'],
  args: [{ name: 'NAME', help: 'its name' }, { name: 'SIZE', help: 'its size', optional: true }],
  options: {
    count: { type: 'string', valueName: 'N', default: '1', help: 'how many' },
    file: { type: 'string', short: 'f', multiple: true, valueName: 'FILE', help: 'a file' },
    'dry-run': { type: 'boolean', help: 'only say what would be made' },
    output: { type: 'string', short: 'o', valueName: 'json', help: 'json' },
  },
} as const satisfies CommandSpec;

/** The usage error `argv` gets, its message checked against `message`. */
function rejects(argv: string[], message: RegExp, spec: CommandSpec = SPEC): void {
  assert.throws(() => parseCommandArgs(spec, argv), (err: unknown) => {
    assert.ok(err instanceof UsageError, String(err));
    assert.equal(err.code, 'WEFT_ERR_USAGE');
    assert.match(err.message, message);
    assert.match(err.message, new RegExp(`\\(see weft ${spec.words.join(' ')} --help\\)$`), 'every usage error points at the command\'s --help');
    return true;
  });
}

describe('parseCommandArgs', () => {
  it('parses with the entry\'s options: defaults, shorts, repeatable ones, positionals', () => {
    const { values, positionals } = parseCommandArgs(SPEC, ['box', '-f', 'a.yaml', '--file=b.yaml', '--dry-run', '-o', 'json']);
    assert.deepEqual({ ...values }, { count: '1', file: ['a.yaml', 'b.yaml'], 'dry-run': true, output: 'json' });
    assert.deepEqual(positionals, ['box']);
    // Typed from the entry: a default makes it a string, a repeatable one an array, the others may be undefined.
    const count: string = values.count;
    const files: string[] | undefined = values.file;
    const dry: boolean | undefined = values['dry-run'];
    assert.deepEqual([count, files?.length, dry], ['1', 2, true]);
    assert.deepEqual(parseCommandArgs(SPEC, ['box', '7']).positionals, ['box', '7']);
  });

  it('gives the tokens in order, for a command whose options depend on their order', () => {
    const { tokens } = parseCommandArgs(SPEC, ['box', '--dry-run', '--count', '3']);
    assert.deepEqual(tokens.map((t) => (t.kind === 'option' ? `--${t.name}` : t.kind === 'positional' ? t.value : '--')), ['box', '--dry-run', '--count']);
  });

  it('names an unknown option, suggesting a close one', () => {
    rejects(['box', '--frobnicate'], /^Unknown option --frobnicate for weft thing make \(see/);
    rejects(['box', '--cuont', '2'], /^Unknown option --cuont for weft thing make; did you mean --count\? /);
    rejects(['box', '-x'], /^Unknown option -x for weft thing make /);
    rejects(['box', '--help'], /^Unknown option --help /);
  });

  it('names an option without its value, and a value given to a flag', () => {
    rejects(['box', '--count'], /^Option --count needs a value \(N\) /);
    rejects(['box', '-f'], /^Option -f needs a value \(FILE\) /);
    rejects(['box', '--dry-run=yes'], /^Option --dry-run takes no value, not "yes" /);
    rejects(['box', '--count', '-3'], /^Option --count would take "-3" as its value, which looks like an option: write --count=-3 if it is the value /);
    assert.equal(parseCommandArgs(SPEC, ['box', '--count=-3']).values.count, '-3');
  });

  it('checks the positionals against the entry\'s arguments', () => {
    rejects([], /^weft thing make needs NAME /);
    rejects(['box', '7', 'extra'], /^Unexpected argument "extra": weft thing make takes NAME SIZE /);
    const none = { ...SPEC, args: [] } satisfies CommandSpec;
    rejects(['box'], /^Unexpected argument "box": weft thing make takes no arguments /, none);
    const variadic = { ...SPEC, args: [{ name: 'NAME...', help: 'names', variadic: true }] } satisfies CommandSpec;
    assert.deepEqual(parseCommandArgs(variadic, ['a', 'b', 'c']).positionals, ['a', 'b', 'c']);
  });

  it('turns parseArgs\'s own error into the same usage error, for a command that parses itself', () => {
    let error: unknown;
    try {
      parseArgs({ args: ['--frob'], options: {}, strict: true });
    } catch (err) {
      error = err;
    }
    const e = usageErrorFor(SPEC, ['box', '--frob'], error as Error);
    assert.ok(e instanceof UsageError);
    assert.equal(e.message, 'Unknown option --frob for weft thing make (see weft thing make --help)');
  });
});
