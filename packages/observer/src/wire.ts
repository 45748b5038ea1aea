/**
 * ProtoWriter: protobuf's wire format written straight into one growing buffer, for the codec of
 * the message sent per flow. protobufjs's Writer keeps a list of operations and runs them at
 * finish(): ~5 µs a flow, most of an agent's CPU at 50k flows/s. This writes each byte once; a
 * nested message's length is written after its body, in one byte reserved before it, and the body
 * moved on where the length needs more (the encoding stays canonical). Strings are written a byte at
 * a time while they are ASCII, which flows' names and labels are, else by Buffer.write.
 */
export class ProtoWriter {
  private buf: Buffer;
  pos = 0;

  constructor(size = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(size);
  }

  /** Starts again empty (also after an encode that threw half-way). */
  reset(): this {
    this.pos = 0;
    return this;
  }

  /** What has been written, as a buffer of its own; the writer starts again empty. */
  finish(): Buffer {
    const out = Buffer.allocUnsafe(this.pos);
    this.buf.copy(out, 0, 0, this.pos);
    this.pos = 0;
    return out;
  }

  /** A varint of a non-negative integer up to 2^53. */
  varint(n: number): void {
    this.room(10);
    const b = this.buf;
    while (n > 0x7f) {
      b[this.pos++] = (n % 128) | 0x80;
      n = Math.floor(n / 128);
    }
    b[this.pos++] = n;
  }

  /** int64's varint: a negative number as its 64-bit two's complement (ten bytes). */
  int64Field(field: number, v: number): void {
    if (!v) return;
    this.tag(field, 0);
    if (v > 0) return this.varint(v);
    let n = BigInt.asUintN(64, BigInt(v));
    this.room(10);
    while (n > 0x7fn) {
      this.buf[this.pos++] = Number(n & 0x7fn) | 0x80;
      n >>= 7n;
    }
    this.buf[this.pos++] = Number(n);
  }

  /** A length-delimited or varint field's tag (field << 3 | wire type). */
  tag(field: number, wireType: 0 | 2): void {
    this.varint((field << 3) | wireType);
  }

  uintField(field: number, v: number | undefined | null): void {
    if (!v) return;
    this.tag(field, 0);
    this.varint(v);
  }

  boolField(field: number, v: boolean | undefined | null): void {
    if (!v) return;
    this.tag(field, 0);
    this.varint(1);
  }

  /** A string field, left out when empty (proto3's default). */
  stringField(field: number, s: string | undefined | null): void {
    if (s) this.string(field, s);
  }

  /** A string field, written even when empty (an element of a repeated field). */
  string(field: number, s: string): void {
    this.tag(field, 2);
    const n = s.length;
    if (n < 128) {
      this.room(n + 1);
      const b = this.buf;
      const start = this.pos;
      b[this.pos++] = n;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c > 0x7f) break;
        b[this.pos++] = c;
      }
      if (i === n) return;
      this.pos = start;
    }
    const bytes = Buffer.byteLength(s);
    this.varint(bytes);
    this.room(bytes);
    this.pos += this.buf.write(s, this.pos, 'utf8');
  }

  bytesField(field: number, v: Buffer): void {
    this.tag(field, 2);
    this.varint(v.length);
    this.room(v.length);
    v.copy(this.buf, this.pos);
    this.pos += v.length;
  }

  /** Starts a nested message as `field`: its body follows; end() writes its length. */
  begin(field: number): number {
    this.tag(field, 2);
    this.room(1);
    return this.pos++;
  }

  end(at: number): void {
    const len = this.pos - at - 1;
    if (len < 128) {
      this.buf[at] = len;
      return;
    }
    let extra = 0;
    for (let n = len >> 7; n > 0; n >>= 7) extra++;
    this.room(extra);
    this.buf.copyWithin(at + 1 + extra, at + 1, this.pos);
    this.pos += extra;
    let n = len;
    for (let i = at; n > 0x7f; i++) {
      this.buf[i] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    this.buf[at + extra] = n;
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }
}
