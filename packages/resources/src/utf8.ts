/**
 * Strict UTF-8 decoding for resource files. Node's 'utf8' decoding replaces a malformed byte with
 * U+FFFD and goes on, so a label value or a name could be stored other than as written; here a
 * file is UTF-8 or it is refused, with the byte offset and line of the first malformed sequence.
 */
import { InvalidResourceError } from './errors.js';

/** The text of `bytes`, or InvalidResourceError naming `file`, the byte offset and the line. */
export function decodeUtf8(bytes: Uint8Array, file: string): string {
  try {
    // A leading byte order mark is dropped, as YAML allows one.
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    const line = 1 + _count(bytes, 0x0a, at);
    const shown = [...bytes.subarray(at, at + 4)].map((b) => `0x${b.toString(16).padStart(2, '0')}`).join(' ');
    throw new InvalidResourceError(file, `not UTF-8: the bytes at byte offset ${at} (line ${line}) are not a valid UTF-8 sequence (${shown}${at + 4 < bytes.length ? ' ...' : ''}); nothing was read from the file`);
  }
}

/**
 * Offset of the first byte of the first malformed sequence, or -1 when `bytes` is valid UTF-8.
 * The decoder says whether a prefix is valid but not where it failed, so: bisect for the shortest
 * prefix that fails even as a stream (where an incomplete last sequence is not yet an error), then
 * step back to where the last complete sequence ended. O(n log n) decoding, on the error path only.
 */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  const streamOk = (k: number): boolean => _decodes(bytes.subarray(0, k), true);
  if (_decodes(bytes, false)) return -1;
  let lo = 0; // streamOk(lo) holds
  let hi = bytes.length + 1; // streamOk(hi) fails, or hi is past the end (only the end is incomplete)
  if (!streamOk(bytes.length)) hi = bytes.length;
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if (streamOk(mid)) lo = mid;
    else hi = mid;
  }
  // Bytes [0, hi - 1) decode as a stream; the bad sequence starts at the end of its last complete one.
  for (let j = Math.min(hi - 1, bytes.length); j >= Math.max(0, hi - 4); j--) if (_decodes(bytes.subarray(0, j), false)) return j;
  return Math.max(0, hi - 4);
}

function _decodes(bytes: Uint8Array, stream: boolean): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes, { stream });
    return true;
  } catch {
    return false;
  }
}

function _count(bytes: Uint8Array, value: number, end: number): number {
  let n = 0;
  for (let i = 0; i < end; i++) if (bytes[i] === value) n++;
  return n;
}
