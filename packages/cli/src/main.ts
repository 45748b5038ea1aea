/** The weft command line. Exit codes: 0 ok, 1 failure, 2 usage error. */
import { WeftError } from '@weft/common';
import { demo } from './commands/demo.js';
import { identity } from './commands/identity.js';
import { UsageError } from './output.js';

const USAGE = `Usage: weft COMMAND [options]

Commands:
  demo [--allocators N] [--cluster NAME] [--cluster-id ID] [-o json]
      Start a real etcd and race N identity allocators over shared workloads.
  identity list|get ID|gc [--etcd HOST:PORT] [--cluster-id ID] [-o json]
      Inspect a cluster's identities, or run one garbage-collection round.
  help
`;

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'demo':
      return demo(rest);
    case 'identity':
      return identity(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return;
    default:
      throw new UsageError(`Unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const e = err as Error & { code?: string };
  const usage = err instanceof UsageError || e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE';
  const code = err instanceof WeftError || err instanceof UsageError ? ` [${e.code}]` : '';
  process.stderr.write(`weft: ${e.message}${code}\n`);
  process.exit(usage ? 2 : 1);
});
