/**
 * Structured logs: pino JSON on stderr (stdout belongs to command output such
 * as `-o json`), with constant field names so logs from every component can be
 * filtered the same way: component, cluster, node, endpoint, identity, peer.
 */
import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

export interface LogContext {
  component: string;
  cluster?: string;
  node?: string;
}

let root: Logger | undefined;

function rootLogger(): Logger {
  root ??= pino(
    {
      level: process.env.WEFT_LOG_LEVEL ?? 'info',
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pino.destination({ fd: 2, sync: true }),
  );
  return root;
}

/**
 * A logger for one component. Pass `parent` to derive from an injected logger
 * (a composition root, a test) instead of the process-wide one.
 */
export function createLogger(context: LogContext, parent?: Logger): Logger {
  const fields: Record<string, string> = { component: context.component };
  if (context.cluster !== undefined) fields.cluster = context.cluster;
  if (context.node !== undefined) fields.node = context.node;
  return (parent ?? rootLogger()).child(fields);
}

/** A logger that drops everything, for callers that opt out of logging. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
