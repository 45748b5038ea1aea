/**
 * What may reach an `ip` command line. Weft runs `ip` as root with arguments built from its
 * configuration, from kernel state and from requests (a CNI ADD names the pod's interface and
 * network namespace), and `ip -batch` reads its commands as text: a newline inside one argument
 * starts a second command, a space splits the argument in two, '#' turns the rest of the line into
 * a comment, and a quote or a trailing backslash changes how iproute2 splits words. Callers
 * validate what they take in with allow-lists, and this module checks again at the lowest layer,
 * for every argument of every `ip` run and batch line: printable ASCII without whitespace, quotes,
 * '#' or '\', and not empty. Nothing Weft passes to `ip` needs more (names, addresses, CIDRs,
 * numbers, hex keys, algorithm names such as rfc4106(gcm(aes))). A refused argument throws
 * before any process starts.
 */
import { NetArgumentError } from './errors.js';

/** Printable ASCII (0x21-0x7e) minus the characters `ip -batch` gives a meaning: # ' " \ */
const SAFE_ARG = /^[\x21\x24-\x26\x28-\x5b\x5d-\x7e]+$/;

/** Named network namespaces: a file name under /var/run/netns, and never an option (no leading '-'). */
const NETNS_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$/;

/** Why `arg` cannot be an `ip` argument, or undefined when it can. */
export function ipArgumentProblem(arg: string): string | undefined {
  if (typeof arg !== 'string') return `is not a string (${typeof arg})`;
  if (arg === '') return 'is empty';
  if (SAFE_ARG.test(arg)) return undefined;
  const bad = [...arg].find((ch) => !SAFE_ARG.test(ch))!;
  const code = bad.codePointAt(0)!;
  if (code === 0) return 'contains a NUL character';
  if (/\s/.test(bad)) return `contains whitespace (${_describe(code)})`;
  if (code < 0x20 || code === 0x7f) return `contains a control character (${_describe(code)})`;
  if (code > 0x7e) return `contains a non-ASCII character (${_describe(code)})`;
  return `contains ${JSON.stringify(bad)}, which ip -batch interprets`;
}

/** Throws NetArgumentError unless every argument may be passed; `what` names the command in the error. */
export function checkIpArgs(args: readonly string[], what = 'ip'): void {
  args.forEach((arg, i) => {
    const problem = ipArgumentProblem(arg);
    if (problem !== undefined) throw new NetArgumentError(what, `argument ${i + 1}`, arg, problem);
  });
}

/** Why `name` cannot name a network namespace, or undefined when it can. */
export function netnsNameProblem(name: string): string | undefined {
  if (typeof name === 'string' && NETNS_NAME.test(name)) return undefined;
  return 'a network namespace name is 1-255 characters of A-Z a-z 0-9 _ . - starting with a letter or digit';
}

/** Throws NetArgumentError unless `name` may name a network namespace; `what` names the command. */
export function checkNetnsName(name: string, what: string): void {
  const problem = netnsNameProblem(name);
  if (problem !== undefined) throw new NetArgumentError(what, 'network namespace name', name, `is not valid: ${problem}`);
}

function _describe(code: number): string {
  const names: Record<number, string> = { 0x09: 'tab', 0x0a: 'newline', 0x0b: 'vertical tab', 0x0c: 'form feed', 0x0d: 'carriage return', 0x20: 'space' };
  return names[code] ?? `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
}
