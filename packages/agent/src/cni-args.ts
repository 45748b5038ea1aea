/**
 * The CNI request, checked with allow-lists where it enters: in the plugin (the runtime's
 * environment and stdin) and again in the agent (its API is an entry point of its own). Every
 * value here ends up in a root process: interface and namespace names on `ip` command lines
 * (and `ip -batch` text), the container id in interface names and state files, the pod's
 * namespace and name in etcd keys. So each field gets the narrowest rule a real runtime needs,
 * and a refusal names the field with the CNI spec's error code (4: invalid necessary environment
 * variable; 7: invalid network configuration).
 *
 * Rules (CNI spec 1.0 and libcni where they say something, narrower where they allow more):
 *  - CNI_CONTAINERID: a letter or digit, then letters, digits, '_', '.', '-' (the spec's rule);
 *    at most 255 characters (runtimes use 64 hex digits).
 *  - CNI_IFNAME: Linux's rules (1-15 bytes, not '.' or '..', no '/', ':' or whitespace), narrowed
 *    to letters, digits, '_', '.', '-' and no leading '-' (an ip argument, never an option).
 *  - CNI_NETNS: an absolute path without control characters or '.'/'..' components, of a named
 *    namespace: /var/run/netns/NAME or /run/netns/NAME (what containerd, CRI-O and the lab
 *    pass); NAME as for `ip netns`. /proc/PID/ns/net and bind mounts elsewhere are refused:
 *    the agent works with named namespaces. Required for ADD and CHECK, may be empty on DEL.
 *  - CNI_ARGS: at most 4096 bytes of KEY=VALUE pairs separated by ';', KEY letters, digits and
 *    '_', VALUE printable ASCII without ';' or '=', no key twice; K8S_POD_NAMESPACE a DNS-1123
 *    label and K8S_POD_NAME a DNS-1123 subdomain (Kubernetes' own rules), both required on ADD.
 *
 * A leaf module (no imports): the plugin loads it on every pod start.
 */

/** CNI spec error codes (SPEC.md, "Error codes"). */
export const CNI_ERROR = {
  incompatibleVersion: 1,
  unsupportedField: 2,
  unknownContainer: 3,
  invalidEnvironment: 4,
  ioFailure: 5,
  decodingFailure: 6,
  invalidNetworkConfig: 7,
  tryAgainLater: 11,
} as const;

/** What the plugin sends the agent for ADD, DEL and CHECK (POST /v1/cni). */
export interface CniArgs {
  containerId: string;
  /** Empty on a DEL whose runtime no longer knows the namespace. */
  netnsPath: string;
  ifname: string;
  /** Empty when CNI_ARGS does not carry them (DEL, CHECK). */
  namespace: string;
  pod: string;
}

export type CniCommand = 'ADD' | 'DEL' | 'CHECK';

/** A refused field: the CNI error code and a message that names the field and quotes the value. */
export interface CniProblem {
  code: number;
  field: string;
  message: string;
}

export const MAX_CONTAINER_ID = 255;
export const MAX_IFNAME_BYTES = 15;
export const MAX_CNI_ARGS_BYTES = 4096;
/** sun_path holds 108 bytes with the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;
const MAX_PATH_BYTES = 4095;

const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const IFNAME = /^[A-Za-z0-9_.][A-Za-z0-9_.-]*$/;
const NETNS_PATH = /^\/(?:var\/)?run\/netns\/([A-Za-z0-9][A-Za-z0-9_.-]{0,254})$/;
/** The spec's rule for a network name (libcni ValidateNetworkName). */
const NETWORK_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const ARGS_KEY = /^[A-Za-z0-9_]+$/;
const ARGS_VALUE = /^[\x21-\x3a\x3c\x3e-\x7e]*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const CONTROL = /[\x00-\x1f\x7f]/;

/** A value for an error message: JSON-quoted (so a newline shows as \n), long ones cut. */
export function quote(value: unknown): string {
  if (typeof value !== 'string') return value === undefined ? '(unset)' : `(${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value === 'object' ? 'an object' : `a ${typeof value}`}, not a string)`;
  return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}...` : value) + (value.length > 64 ? ` (${value.length} characters)` : '');
}

export function containerIdProblem(v: unknown): string | undefined {
  if (typeof v !== 'string' || v === '') return 'is required';
  if (v.length > MAX_CONTAINER_ID) return `is longer than ${MAX_CONTAINER_ID} characters`;
  if (!CONTAINER_ID.test(v)) return "must start with a letter or digit, followed by letters, digits, '_', '.' or '-'";
  return undefined;
}

export function ifnameProblem(v: unknown): string | undefined {
  if (typeof v !== 'string' || v === '') return 'is required';
  if (Buffer.byteLength(v) > MAX_IFNAME_BYTES) return `is longer than ${MAX_IFNAME_BYTES} bytes (Linux's limit)`;
  if (v === '.' || v === '..') return "cannot be '.' or '..'";
  if (!IFNAME.test(v)) return "must be letters, digits, '_', '.' or '-' (not first): no '/', ':', whitespace or control characters";
  return undefined;
}

/** `optional`: an empty path is allowed (DEL). */
export function netnsPathProblem(v: unknown, optional = false): string | undefined {
  if (v === undefined || v === '') return optional ? undefined : 'is required';
  if (typeof v !== 'string') return 'must be a string';
  if (Buffer.byteLength(v) > MAX_PATH_BYTES) return `is longer than ${MAX_PATH_BYTES} bytes`;
  if (CONTROL.test(v)) return 'contains a control character';
  if (!v.startsWith('/')) return 'must be an absolute path';
  if (v.split('/').some((part) => part === '.' || part === '..')) return "must not contain '.' or '..' components";
  if (!NETNS_PATH.test(v)) return "must name a network namespace as /var/run/netns/NAME or /run/netns/NAME, NAME letters, digits, '_', '.' or '-' starting with a letter or digit";
  return undefined;
}

/** The namespace name of a valid CNI_NETNS (its last component). */
export function netnsNameOf(path: string): string | undefined {
  return NETNS_PATH.exec(path)?.[1];
}

/** A path where the network configuration names a unix socket (agentSocket). */
export function socketPathProblem(v: unknown): string | undefined {
  if (typeof v !== 'string' || v === '') return 'is required (the path of the Weft agent socket)';
  if (CONTROL.test(v)) return 'contains a control character';
  if (!v.startsWith('/')) return 'must be an absolute path';
  if (v.split('/').some((part) => part === '.' || part === '..')) return "must not contain '.' or '..' components";
  if (Buffer.byteLength(v) > MAX_SOCKET_PATH_BYTES) return `is longer than ${MAX_SOCKET_PATH_BYTES} bytes (a unix socket path's limit)`;
  return undefined;
}

export function networkNameProblem(v: unknown): string | undefined {
  if (typeof v !== 'string' || v === '') return 'is required';
  if (v.length > 255) return 'is longer than 255 characters';
  if (!NETWORK_NAME.test(v)) return "must start with a letter or digit, followed by letters, digits, '_', '.' or '-'";
  return undefined;
}

export function podNamespaceProblem(v: unknown): string | undefined {
  if (typeof v !== 'string' || !DNS_LABEL.test(v)) return 'must be a Kubernetes namespace name (a DNS-1123 label: 1-63 characters of a-z, 0-9 and -, starting and ending with a letter or digit)';
  return undefined;
}

export function podNameProblem(v: unknown): string | undefined {
  if (typeof v !== 'string' || v.length > 253 || !DNS_SUBDOMAIN.test(v)) return 'must be a Kubernetes object name (a DNS-1123 subdomain: at most 253 characters of a-z, 0-9, - and ., each part starting and ending with a letter or digit)';
  return undefined;
}

/** CNI_ARGS to its pairs, or the problem (code 4, field CNI_ARGS). */
export function parseCniArgs(text: string): { pairs: Record<string, string> } | { problem: CniProblem } {
  const fail = (why: string): { problem: CniProblem } => ({ problem: { code: CNI_ERROR.invalidEnvironment, field: 'CNI_ARGS', message: `Invalid CNI_ARGS ${quote(text)}: ${why}` } });
  if (typeof text !== 'string') return fail('must be a string');
  if (Buffer.byteLength(text) > MAX_CNI_ARGS_BYTES) return fail(`is longer than ${MAX_CNI_ARGS_BYTES} bytes`);
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const pair of text.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const key = eq < 0 ? pair : pair.slice(0, eq);
    const value = eq < 0 ? undefined : pair.slice(eq + 1);
    if (value === undefined || !ARGS_KEY.test(key)) return fail(`${quote(pair)} is not KEY=VALUE with a key of letters, digits and '_'`);
    if (!ARGS_VALUE.test(value)) return fail(`the value of ${key} must be printable ASCII without whitespace, ';' or '='`);
    if (key in out) return fail(`${key} is given twice`);
    out[key] = value;
  }
  return { pairs: out };
}

/**
 * Checks a request's arguments as the agent receives them; returns the first problem, naming
 * the CNI variable it came from, or undefined when every field is acceptable.
 */
export function cniArgsProblem(command: CniCommand, args: Partial<Record<keyof CniArgs, unknown>>): CniProblem | undefined {
  const field = (name: string, value: unknown, problem: string | undefined): CniProblem | undefined => {
    if (problem === undefined) return undefined;
    const missing = value === undefined || value === '';
    return { code: CNI_ERROR.invalidEnvironment, field: name, message: missing ? `Missing ${name} (required for ${command})` : `Invalid ${name} ${quote(value)}: ${problem}` };
  };
  // Pod namespace and name come from CNI_ARGS; only ADD needs them, but a given one is checked always.
  const pod = (key: string, value: unknown, rule: (v: unknown) => string | undefined): CniProblem | undefined =>
    (value === undefined || value === '') && command !== 'ADD' ? undefined : field(`K8S_POD_${key} in CNI_ARGS`, value, rule(value));
  return (
    field('CNI_CONTAINERID', args.containerId, containerIdProblem(args.containerId)) ??
    field('CNI_NETNS', args.netnsPath, netnsPathProblem(args.netnsPath, command === 'DEL')) ??
    field('CNI_IFNAME', args.ifname, ifnameProblem(args.ifname)) ??
    pod('NAMESPACE', args.namespace, podNamespaceProblem) ??
    pod('NAME', args.pod, podNameProblem)
  );
}

export function isCniCommand(v: unknown): v is CniCommand {
  return v === 'ADD' || v === 'DEL' || v === 'CHECK';
}
