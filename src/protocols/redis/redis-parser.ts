// Redis serialization protocol (RESP2 and RESP3, https://redis.io/docs/reference/protocol-spec/).
// Client side: commands, as an array of bulk strings ("*<n>\r\n$<len>\r\n<arg>\r\n...") or an
// inline command line, read exactly as redis-server's networking.c does (processMultibulkBuffer,
// processInlineBuffer + sdssplitargs): header lines end at the first CR and the byte after it is
// skipped unread; a bulk is followed by two bytes the server skips unread; numbers are read with
// string2ll's rules (no '+', no leading zeros); an inline line ends at LF, a CR before it is
// dropped, and a NUL ends the arguments. Server side: replies, RESP2 and RESP3 types, so the
// enforcer can place a denial's answer in order among pipelined replies.
//
// `redis.command` is emitted once the facts a rule needs are read (name, subcommand, keys per the
// command's key spec, redis-commands.ts) — its `end` is where they end, and the command's other
// arguments (values, possibly large) may follow; `redis.command-end` marks the command's last byte.
// Only the bytes up to the decision are ever kept, and those are bounded (MAX_DECISION_BYTES).
import { HeadTooLargeError, MalformedStreamError } from '../errors.js';
import { FixedGather, LineGather } from '../byte-gather.js';
import { StreamParserBase } from '../stream-parser-base.js';
import type { Side } from '../types.js';
import { CONTAINER_COMMANDS, keyIndexes, keySpecOf } from './redis-commands.js';

/** Redis' own limits: proto-max-bulk-len 512 MB; PROTO_INLINE_MAX_SIZE 64 KiB; 1M multibulk. */
const MAX_BULK_LENGTH = 512 * 1024 * 1024;
const MAX_ARGS = 1024 * 1024;
const MAX_INLINE_LINE = 64 * 1024;
/** A header line ("*<n>", "$<len>") longer than this holds no valid number. */
const MAX_HEADER_LINE = 32;
/** Arguments read for the decision (name, subcommand, keys, numkeys, STREAMS) up to this size. */
export const MAX_CAPTURED_ARG = 4096;
/** The facts of a command must lie within its first MiB (MSET interleaves keys and values). */
export const MAX_DECISION_BYTES = 1024 * 1024;
/** Command names longer than this are not Redis commands. */
const MAX_NAME_BYTES = 64;
/** Error text kept from a server error reply, for records. */
const MAX_ERROR_TEXT = 200;
/** Nesting of server replies (RESP3 maps of arrays of ...). */
const MAX_REPLY_DEPTH = 64;

/** string2ll (util.c): optional '-', no '+', no leading zero, at most 19 digits. */
const STRING2LL = /^(?:0|-?[1-9][0-9]{0,18})$/;

const enum Phase {
  Start,
  ArgHeader,
  ArgCapture,
  ArgSkip,
}

const enum ReplyPhase {
  Type,
  Line,
  Bulk,
}

interface ReplyFrame {
  remaining: number;
  attribute: boolean;
}

export class RedisParser extends StreamParserBase {
  readonly protocol = 'redis' as const;
  // ---- client ----
  private readonly inline = new LineGather();
  private readonly fixed = new FixedGather();
  private header: number[] = [];
  /** A CR was seen in a header line: the next byte, whatever it is, ends it. */
  private headerCr = false;
  private phase = Phase.Start;
  private commandStart = 0;
  private argCount = 0;
  private argIndex = 0;
  private bulkLength = 0;
  private skipRemaining = 0;
  /** Captured arguments (null: longer than MAX_CAPTURED_ARG). */
  private args: Array<string | null> = [];
  private decided = false;
  // ---- server ----
  private replyPhase = ReplyPhase.Type;
  private replyStart = 0;
  private replyKind = '';
  private replyError: string | null = null;
  private replyLine: number[] = [];
  private replyType = 0;
  private replyBulkLeft = 0;
  private readonly stack: ReplyFrame[] = [];

  protected parse(side: Side, chunk: Buffer, base: number): void {
    if (side === 'server') this.parseServer(chunk, base);
    else this.parseClient(chunk, base);
  }

  // ---------------------------------------------------------------- client commands

  private parseClient(chunk: Buffer, base: number): void {
    let pos = 0;
    while (pos < chunk.length) {
      switch (this.phase) {
        case Phase.Start: {
          if (this.inline.pendingLength === 0 && this.header.length === 0 && !this.headerCr) {
            this.commandStart = base + pos;
            if (chunk[pos] === 0x2a /* * */) {
              this.header = [];
              this.phase = Phase.ArgHeader;
              this.argIndex = -1; // the array header itself
              pos++;
              continue;
            }
          }
          const line = this.inline.take(chunk, pos);
          pos += this.inline.used;
          if (line === null) {
            if (this.inline.pendingLength > MAX_INLINE_LINE) this.fail(HeadTooLargeError, 'client', this.commandStart, `inline command exceeds ${MAX_INLINE_LINE} bytes`);
            return;
          }
          this.onInline(line, base + pos);
          break;
        }
        case Phase.ArgHeader: {
          // Up to CR, then one more byte skipped unread (networking.c: `newline + 2`).
          while (pos < chunk.length) {
            const c = chunk[pos++]!;
            if (this.headerCr) {
              this.headerCr = false;
              this.onHeader(base + pos);
              break;
            }
            if (c === 0x0d) this.headerCr = true;
            else {
              this.header.push(c);
              if (this.header.length > MAX_HEADER_LINE) this.fail(MalformedStreamError, 'client', this.commandStart, 'header line too long');
            }
          }
          break;
        }
        case Phase.ArgCapture: {
          const bytes = this.fixed.take(chunk, pos, this.bulkLength + 2);
          pos += this.fixed.used;
          if (bytes === null) {
            this.checkDecisionBudget(base + pos);
            return;
          }
          this.args.push(bytes.toString('latin1', 0, this.bulkLength));
          this.nextArg(base + pos);
          break;
        }
        case Phase.ArgSkip: {
          const n = Math.min(this.skipRemaining, chunk.length - pos);
          pos += n;
          this.skipRemaining -= n;
          if (this.skipRemaining === 0) {
            this.args.push(null);
            this.nextArg(base + pos);
          } else this.checkDecisionBudget(base + pos);
          break;
        }
      }
    }
    if (this.phase !== Phase.Start) this.checkDecisionBudget(base + pos);
  }

  private checkDecisionBudget(at: number): void {
    if (!this.decided && at - this.commandStart > MAX_DECISION_BYTES) {
      this.fail(HeadTooLargeError, 'client', this.commandStart, `the keys of a Redis command are not within its first ${MAX_DECISION_BYTES} bytes`);
    }
  }

  private onHeader(end: number): void {
    const text = Buffer.from(this.header).toString('latin1');
    this.header = [];
    if (this.argIndex === -1) {
      // "*<count>"
      if (!STRING2LL.test(text) || Number(text) > 0x7fffffff) this.fail(MalformedStreamError, 'client', this.commandStart, `invalid multibulk length ${JSON.stringify(text)}`);
      const count = Number(text);
      if (count <= 0) {
        // *0 / *-1: redis-server runs nothing and reads on.
        this.phase = Phase.Start;
        this.emit({ type: 'redis.command-end', side: 'client', start: this.commandStart, end });
        return;
      }
      if (count > MAX_ARGS) this.fail(MalformedStreamError, 'client', this.commandStart, `array of ${count} arguments`);
      this.argCount = count;
      this.argIndex = 0;
      this.args = [];
      this.decided = false;
      return;
    }
    // "$<length>": the caller saw the header start with '$'.
    if (text.charCodeAt(0) !== 0x24) this.fail(MalformedStreamError, 'client', end, `expected '$', got ${JSON.stringify(text.slice(0, 1))}`);
    const n = text.slice(1);
    if (!STRING2LL.test(n) || Number(n) < 0 || Number(n) > MAX_BULK_LENGTH) this.fail(MalformedStreamError, 'client', end, `invalid bulk length ${JSON.stringify(n)}`);
    const length = Number(n);
    this.bulkLength = length;
    if (this.argIndex === 0 && length > MAX_NAME_BYTES) this.fail(MalformedStreamError, 'client', this.commandStart, `command name of ${length} bytes`);
    if (!this.decided && length <= MAX_CAPTURED_ARG) this.phase = Phase.ArgCapture;
    else {
      this.skipRemaining = length + 2;
      this.phase = Phase.ArgSkip;
    }
  }

  private nextArg(end: number): void {
    this.argIndex++;
    if (!this.decided) this.tryDecide(end, this.argIndex === this.argCount);
    if (this.argIndex < this.argCount) {
      this.phase = Phase.ArgHeader;
      return;
    }
    this.phase = Phase.Start;
    this.args = [];
    this.emit({ type: 'redis.command-end', side: 'client', start: this.commandStart, end });
  }

  /** Emits `redis.command` once the arguments read so far hold every fact; `last`: no more are coming. */
  private tryDecide(end: number, last: boolean, inline = false): void {
    const args = this.args;
    const name = (args[0] ?? '').toUpperCase();
    const hasSub = CONTAINER_COMMANDS.has(name) && this.argCount > 1;
    if (hasSub && args.length < 2 && !last) return;
    const subcommand = hasSub ? (args[1] ?? '').toUpperCase().slice(0, MAX_NAME_BYTES) : null;
    const spec = keySpecOf(name, subcommand);
    let keys: string[] | null = null;
    if (spec !== null) {
      const indexes = keyIndexes(spec, this.argCount, (i) => (i < args.length ? (args[i] ?? '') : undefined));
      if (indexes === undefined && !last) return;
      if (indexes !== undefined && indexes !== null) {
        const need = indexes.length === 0 ? 0 : Math.max(...indexes);
        if (need >= args.length) {
          if (!last) return;
        } else {
          keys = [];
          for (const i of indexes) {
            const key = args[i];
            if (key === null || key === undefined) this.fail(HeadTooLargeError, 'client', this.commandStart, `a key of more than ${MAX_CAPTURED_ARG} bytes`);
            keys.push(key);
          }
        }
      }
    }
    this.decided = true;
    this.emit({ type: 'redis.command', side: 'client', start: this.commandStart, end, command: name, subcommand, keys, argCount: this.argCount - 1, inline });
  }

  private onInline(line: Buffer, end: number): void {
    // processInlineBuffer: the line up to LF, a CR before it dropped; sdssplitargs reads it.
    let stop = line.length - 1; // the LF
    if (stop > 0 && line[stop - 1] === 0x0d) stop--;
    const words = splitArgs(line.subarray(0, stop));
    if (words === null) this.fail(MalformedStreamError, 'client', this.commandStart, 'unbalanced quotes in inline command');
    if (words.length === 0) {
      // An empty line: redis-server reads on (the bytes carry nothing).
      this.emit({ type: 'redis.command-end', side: 'client', start: this.commandStart, end });
      return;
    }
    this.argCount = words.length;
    this.args = words;
    this.decided = false;
    this.tryDecide(end, true, true);
    this.args = [];
    this.emit({ type: 'redis.command-end', side: 'client', start: this.commandStart, end });
  }

  // ---------------------------------------------------------------- server replies

  private parseServer(chunk: Buffer, base: number): void {
    let pos = 0;
    while (pos < chunk.length) {
      switch (this.replyPhase) {
        case ReplyPhase.Type: {
          const t = chunk[pos]!;
          if (this.stack.length === 0) {
            this.replyStart = base + pos;
            this.replyKind = '';
            this.replyError = null;
          }
          if (!isReplyType(t)) this.fail(MalformedStreamError, 'server', base + pos, `unknown RESP type byte 0x${t.toString(16)}`);
          if (this.replyKind === '' && t !== 0x7c /* | attribute */) this.replyKind = String.fromCharCode(t);
          this.replyType = t;
          this.replyLine = [];
          this.replyPhase = ReplyPhase.Line;
          pos++;
          break;
        }
        case ReplyPhase.Line: {
          const lf = chunk.indexOf(0x0a, pos);
          const stop = lf < 0 ? chunk.length : lf;
          for (let i = pos; i < stop; i++) this.replyLine.push(chunk[i]!);
          if (this.replyLine.length > MAX_INLINE_LINE + 2 && !(this.replyType === 0x2d || this.replyType === 0x2b)) {
            this.fail(MalformedStreamError, 'server', base + pos, 'RESP header line too long');
          }
          if (this.replyLine.length > 512 * 1024 * 1024) this.fail(HeadTooLargeError, 'server', base + pos, 'RESP line too long');
          if (lf < 0) return;
          pos = lf + 1;
          this.onReplyLine(base + pos);
          break;
        }
        case ReplyPhase.Bulk: {
          const n = Math.min(this.replyBulkLeft, chunk.length - pos);
          pos += n;
          this.replyBulkLeft -= n;
          if (this.replyBulkLeft === 0) {
            this.replyPhase = ReplyPhase.Type;
            this.elementDone(base + pos);
          }
          break;
        }
      }
    }
  }

  private onReplyLine(end: number): void {
    const line = this.replyLine;
    if (line[line.length - 1] !== 0x0d) this.fail(MalformedStreamError, 'server', end, 'RESP line not ended by CR LF');
    const text = Buffer.from(line.slice(0, line.length - 1)).toString('latin1');
    this.replyLine = [];
    this.replyPhase = ReplyPhase.Type;
    const t = this.replyType;
    switch (t) {
      case 0x2d: // - error
        if (this.stack.length === 0) this.replyError = text.slice(0, MAX_ERROR_TEXT);
        this.elementDone(end);
        return;
      case 0x2b: case 0x3a: case 0x5f: case 0x2c: case 0x23: case 0x28: // + : _ , # (
        this.elementDone(end);
        return;
      case 0x24: case 0x21: case 0x3d: { // $ ! = bulk
        const n = this.number(text, end);
        if (n === -1 && t === 0x24) {
          this.elementDone(end);
          return;
        }
        if (n < 0 || n > MAX_BULK_LENGTH) this.fail(MalformedStreamError, 'server', end, `bulk length ${n}`);
        this.replyBulkLeft = n + 2;
        this.replyPhase = ReplyPhase.Bulk;
        return;
      }
      default: { // * ~ > % | aggregates
        const n = this.number(text, end);
        if (n === -1 && t === 0x2a) {
          this.elementDone(end);
          return;
        }
        if (n < 0 || n > MAX_ARGS * 4) this.fail(MalformedStreamError, 'server', end, `aggregate length ${n}`);
        const count = t === 0x25 || t === 0x7c ? n * 2 : n;
        if (this.stack.length >= MAX_REPLY_DEPTH) this.fail(MalformedStreamError, 'server', end, 'replies nested too deep');
        this.stack.push({ remaining: count, attribute: t === 0x7c });
        if (count === 0) this.aggregateDone(end);
        return;
      }
    }
  }

  /** One element (or a whole top-level reply) finished at `end`. */
  private elementDone(end: number): void {
    const top = this.stack[this.stack.length - 1];
    if (top === undefined) {
      this.emitReply(end);
      return;
    }
    top.remaining--;
    if (top.remaining === 0) this.aggregateDone(end);
  }

  private aggregateDone(end: number): void {
    const done = this.stack.pop() as ReplyFrame;
    // An attribute annotates the element that follows it; it is not an element itself.
    if (done.attribute) return;
    this.elementDone(end);
  }

  private emitReply(end: number): void {
    this.emit({ type: 'redis.reply', side: 'server', start: this.replyStart, end, kind: this.replyKind, push: this.replyKind === '>', error: this.replyError });
  }

  private number(text: string, end: number): number {
    // RESP3 streamed aggregates/strings ("*?", "$?") are not sent by redis-server: refused.
    if (!STRING2LL.test(text)) this.fail(MalformedStreamError, 'server', end, `invalid RESP length ${JSON.stringify(text.slice(0, 20))}`);
    return Number(text);
  }

  protected finish(side: Side, offset: number): void {
    if (side === 'client' && (this.phase !== Phase.Start || this.inline.pendingLength > 0)) this.truncated(side, offset, 'a Redis command');
    if (side === 'server' && (this.stack.length > 0 || this.replyPhase !== ReplyPhase.Type)) this.truncated(side, offset, 'a Redis reply');
  }
}

function isReplyType(t: number): boolean {
  // RESP2: + - : $ *   RESP3: _ , # ( ! = % ~ > |
  return t === 0x2b || t === 0x2d || t === 0x3a || t === 0x24 || t === 0x2a || t === 0x5f || t === 0x2c || t === 0x23
    || t === 0x28 || t === 0x21 || t === 0x3d || t === 0x25 || t === 0x7e || t === 0x3e || t === 0x7c;
}

const isSpace = (c: number | undefined): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0b || c === 0x0c || c === 0x0d;
const isHex = (c: number | undefined): boolean => c !== undefined && ((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46));

/**
 * sdssplitargs (sds.c), byte for byte: whitespace-separated words, "double quotes" with \n \r \t
 * \b \a \xHH escapes, 'single quotes' with \' only; a closing quote must be followed by a space
 * or the end; a NUL ends the input (the C string ends there). Returns null for unbalanced quotes.
 */
export function splitArgs(line: Buffer): string[] | null {
  const nul = line.indexOf(0);
  const s = nul < 0 ? line : line.subarray(0, nul);
  const out: string[] = [];
  let p = 0;
  for (;;) {
    while (p < s.length && isSpace(s[p])) p++;
    if (p >= s.length) return out;
    let inq = false;
    let insq = false;
    let done = false;
    const cur: number[] = [];
    while (!done) {
      const c = s[p];
      if (inq) {
        if (c === undefined) return null;
        if (c === 0x5c && s[p + 1] === 0x78 && isHex(s[p + 2]) && isHex(s[p + 3])) {
          cur.push(parseInt(String.fromCharCode(s[p + 2]!, s[p + 3]!), 16));
          p += 3;
        } else if (c === 0x5c && p + 1 < s.length) {
          p++;
          const e = s[p]!;
          cur.push(e === 0x6e ? 0x0a : e === 0x72 ? 0x0d : e === 0x74 ? 0x09 : e === 0x62 ? 0x08 : e === 0x61 ? 0x07 : e);
        } else if (c === 0x22) {
          if (p + 1 < s.length && !isSpace(s[p + 1])) return null;
          done = true;
        } else cur.push(c);
      } else if (insq) {
        if (c === undefined) return null;
        if (c === 0x5c && s[p + 1] === 0x27) {
          p++;
          cur.push(0x27);
        } else if (c === 0x27) {
          if (p + 1 < s.length && !isSpace(s[p + 1])) return null;
          done = true;
        } else cur.push(c);
      } else if (c === undefined || c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) {
        done = true;
      } else if (c === 0x22) inq = true;
      else if (c === 0x27) insq = true;
      else cur.push(c);
      if (p < s.length) p++;
    }
    out.push(Buffer.from(cur).toString('latin1'));
  }
}
