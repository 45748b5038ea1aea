/**
 * PolicyRevisions: the node's policy revision counter. Every change of an
 * endpoint's policy takes the next revision, and the datapath re-checks an
 * established connection when its entry's revision differs from the
 * endpoint's. So a revision must never come back: not for another endpoint
 * (a new pod starting at 1 would match entries its predecessor left at 1),
 * and not after an agent restart (a re-adopted pod restarting at 1 would
 * match entries admitted under an older, wider policy).
 *
 * Hence one counter per node, monotonic across restarts: revisions are
 * reserved in blocks saved to the state directory (one write per block, not
 * per change), and the counter never starts below what the pinned endpoints
 * map holds (`floor`), in case the state directory was lost while the pins
 * were not.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** Revisions reserved per write of the state file. */
export const REVISION_BLOCK = 1024;
/** The datapath stores revisions as __u32. */
const MAX_REVISION = 0xffff_ffff;

export class PolicyRevisions {
  private current: number;
  private reserved: number;

  /** `floor`: the highest revision the datapath holds (0 if none). */
  constructor(
    private readonly file: string,
    floor = 0,
  ) {
    let saved = 0;
    try {
      const v = (JSON.parse(readFileSync(file, 'utf8')) as { reserved?: unknown }).reserved;
      if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) saved = v;
    } catch {
      // First start: nothing reserved yet.
    }
    // A previous run may have handed out anything up to what it reserved.
    this.current = Math.max(saved, floor);
    this.reserved = this.current;
  }

  /** The next revision, never handed out before on this node. */
  next(): number {
    if (this.current >= MAX_REVISION) throw new RangeError(`Policy revisions of this node are exhausted (${MAX_REVISION})`);
    this.current++;
    if (this.current > this.reserved) {
      this.reserved = Math.min(MAX_REVISION, this.current + REVISION_BLOCK - 1);
      mkdirSync(dirname(this.file), { recursive: true });
      const tmp = `${this.file}.tmp`;
      writeFileSync(tmp, JSON.stringify({ reserved: this.reserved }));
      renameSync(tmp, this.file);
    }
    return this.current;
  }

  /** The last revision handed out. */
  get last(): number {
    return this.current;
  }
}
