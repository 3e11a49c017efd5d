// SSH identification strings (RFC 4253 §4.2): "SSH-protoversion-softwareversion SP comments
// CR LF", at most 255 characters; a server may send other lines before it (§4.2). Everything
// after the banner is the binary packet protocol (encrypted after key exchange): opaque here.
import { HeadTooLargeError, MalformedStreamError } from '../errors.js';
import { LineGather } from '../byte-gather.js';
import { StreamParserBase } from '../stream-parser-base.js';
import type { Side } from '../types.js';

/** RFC 4253 §4.2: the identification line is at most 255 characters including CR LF. */
const MAX_BANNER_LINE = 255;
/** Lines a server may send before its banner; more than this is not an SSH server. */
const MAX_PRE_BANNER_BYTES = 8192;

class SideState {
  readonly lines = new LineGather();
  lineStart = 0;
  preBannerBytes = 0;
}

export class SshParser extends StreamParserBase {
  readonly protocol = 'ssh' as const;
  private readonly client = new SideState();
  private readonly server = new SideState();

  protected parse(side: Side, chunk: Buffer, base: number): void {
    const st = side === 'client' ? this.client : this.server;
    let pos = 0;
    while (pos < chunk.length) {
      if (st.lines.pendingLength === 0) st.lineStart = base + pos;
      const line = st.lines.take(chunk, pos);
      pos += st.lines.used;
      if (line === null) {
        if (st.lines.pendingLength > MAX_BANNER_LINE) {
          this.fail(HeadTooLargeError, side, st.lineStart, `identification line longer than ${MAX_BANNER_LINE} bytes`);
        }
        if (st.preBannerBytes + st.lines.pendingLength > MAX_PRE_BANNER_BYTES) {
          this.fail(MalformedStreamError, side, st.lineStart, 'no SSH identification string');
        }
        return;
      }
      const end = st.lineStart + line.length;
      if (line.length >= 4 && line.toString('latin1', 0, 4) === 'SSH-') {
        if (line.length > MAX_BANNER_LINE) this.fail(HeadTooLargeError, side, st.lineStart, `identification line longer than ${MAX_BANNER_LINE} bytes`);
        this.onBanner(side, line, st.lineStart, end);
        this.markOpaque(side, end, 'ssh-encrypted');
        return;
      }
      // §4.2: only the server may send other lines first.
      if (side === 'client') this.fail(MalformedStreamError, side, st.lineStart, 'client did not start with "SSH-"');
      st.preBannerBytes += line.length;
      if (st.preBannerBytes > MAX_PRE_BANNER_BYTES) this.fail(MalformedStreamError, side, st.lineStart, 'no SSH identification string');
    }
  }

  private onBanner(side: Side, line: Buffer, start: number, end: number): void {
    let text = line.toString('latin1');
    text = text.replace(/\r?\n$/, '');
    const m = /^SSH-([^-\s]+)-(\S+)(?: (.*))?$/.exec(text);
    if (m === null) this.fail(MalformedStreamError, side, start, `malformed identification string ${JSON.stringify(text.slice(0, 80))}`);
    this.emit({ type: 'ssh.banner', side, start, end, protoVersion: m[1]!, softwareVersion: m[2]!, comments: m[3] ?? null });
  }

  protected finish(side: Side, offset: number): void {
    const st = side === 'client' ? this.client : this.server;
    if (st.lines.pendingLength > 0) this.truncated(side, offset, 'the SSH identification string');
  }
}
