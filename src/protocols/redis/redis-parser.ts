// Redis client commands in RESP (Redis serialization protocol, RESP2/RESP3 request format:
// an array of bulk strings, "*<n>\r\n$<len>\r\n<arg>\r\n..."; or an inline command line).
// Only the command name is kept; argument payloads are skipped without buffering.
// Server replies are not interpreted.
import { HeadTooLargeError, MalformedStreamError } from '../errors.js';
import { FixedGather, LineGather } from '../byte-gather.js';
import { StreamParserBase } from '../stream-parser-base.js';
import type { Side } from '../types.js';

/** Redis' own limits: proto-max-bulk-len 512 MB; inline commands up to 64 KiB. */
const MAX_BULK_LENGTH = 512 * 1024 * 1024;
const MAX_ARGS = 1024 * 1024;
const MAX_INLINE_LINE = 64 * 1024;
const MAX_HEADER_LINE = 32;
/** Command names longer than this are not Redis commands; kept to this many bytes. */
const MAX_NAME_BYTES = 64;

const enum Phase {
  Line,
  ArgHeader,
  ArgName,
  ArgSkip,
}

export class RedisParser extends StreamParserBase {
  readonly protocol = 'redis' as const;
  private readonly lines = new LineGather();
  private readonly fixed = new FixedGather();
  private phase = Phase.Line;
  private lineStart = 0;
  private commandStart = 0;
  private argsLeft = 0;
  private argCount = 0;
  private argIndex = 0;
  private bulkLength = 0;
  private skipRemaining = 0;
  private command = '';

  protected parse(side: Side, chunk: Buffer, base: number): void {
    if (side === 'server') return;
    let pos = 0;
    while (pos < chunk.length) {
      switch (this.phase) {
        case Phase.Line:
        case Phase.ArgHeader: {
          if (this.lines.pendingLength === 0) this.lineStart = base + pos;
          const line = this.lines.take(chunk, pos);
          pos += this.lines.used;
          if (line === null) {
            const cap = this.phase === Phase.ArgHeader ? MAX_HEADER_LINE : MAX_INLINE_LINE;
            if (this.lines.pendingLength > cap) this.fail(HeadTooLargeError, 'client', this.lineStart, `command line exceeds ${cap} bytes`);
            return;
          }
          if (this.phase === Phase.Line) this.onLine(line, base + pos);
          else this.onArgHeader(line);
          break;
        }
        case Phase.ArgName: {
          const bytes = this.fixed.take(chunk, pos, this.bulkLength + 2);
          pos += this.fixed.used;
          if (bytes === null) return;
          this.command = bytes.toString('latin1', 0, Math.min(this.bulkLength, MAX_NAME_BYTES)).toUpperCase();
          this.nextArg(base + pos);
          break;
        }
        case Phase.ArgSkip: {
          const n = Math.min(this.skipRemaining, chunk.length - pos);
          pos += n;
          this.skipRemaining -= n;
          if (this.skipRemaining === 0) this.nextArg(base + pos);
          break;
        }
      }
    }
  }

  private onLine(line: Buffer, end: number): void {
    this.commandStart = this.lineStart;
    if (line[0] === 0x2a) {
      if (line.length > MAX_HEADER_LINE) this.fail(MalformedStreamError, 'client', this.lineStart, 'array header too long');
      const count = this.integer(line, 'array length');
      if (count <= 0) return; // *0 / *-1: nothing to run
      if (count > MAX_ARGS) this.fail(MalformedStreamError, 'client', this.lineStart, `array of ${count} arguments`);
      this.argCount = count;
      this.argsLeft = count;
      this.argIndex = 0;
      this.command = '';
      this.phase = Phase.ArgHeader;
      return;
    }
    // Inline command: space-separated words on one line.
    const text = line.toString('latin1').trim();
    if (text.length === 0) return;
    const words = text.split(/\s+/);
    this.emit({ type: 'redis.command', side: 'client', start: this.commandStart, end, command: words[0]!.toUpperCase().slice(0, MAX_NAME_BYTES), argCount: words.length - 1, inline: true });
  }

  private onArgHeader(line: Buffer): void {
    if (line[0] !== 0x24) this.fail(MalformedStreamError, 'client', this.lineStart, 'expected a bulk string ("$") in a command array');
    if (line.length > MAX_HEADER_LINE) this.fail(MalformedStreamError, 'client', this.lineStart, 'bulk string header too long');
    const length = this.integer(line, 'bulk length');
    if (length < 0 || length > MAX_BULK_LENGTH) this.fail(MalformedStreamError, 'client', this.lineStart, `bulk length ${length} out of range`);
    this.bulkLength = length;
    if (this.argIndex === 0 && length <= MAX_NAME_BYTES) {
      this.phase = Phase.ArgName;
    } else {
      if (this.argIndex === 0) this.fail(MalformedStreamError, 'client', this.lineStart, `command name of ${length} bytes`);
      this.skipRemaining = length + 2;
      this.phase = Phase.ArgSkip;
    }
  }

  private nextArg(end: number): void {
    this.argIndex++;
    this.argsLeft--;
    if (this.argsLeft > 0) {
      this.phase = Phase.ArgHeader;
      return;
    }
    this.phase = Phase.Line;
    this.emit({ type: 'redis.command', side: 'client', start: this.commandStart, end, command: this.command, argCount: this.argCount - 1, inline: false });
  }

  /** The decimal after the type byte, up to CR LF. */
  private integer(line: Buffer, what: string): number {
    const text = line.toString('latin1', 1).replace(/\r?\n$/, '');
    if (!/^-?\d{1,10}$/.test(text)) this.fail(MalformedStreamError, 'client', this.lineStart, `invalid ${what} ${JSON.stringify(text.slice(0, 20))}`);
    return Number(text);
  }

  protected finish(side: Side, offset: number): void {
    if (side === 'client' && (this.phase !== Phase.Line || this.lines.pendingLength > 0)) this.truncated(side, offset, 'a Redis command');
  }
}
