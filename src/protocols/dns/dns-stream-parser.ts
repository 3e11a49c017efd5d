// DNS over TCP (RFC 7766 §8, RFC 1035 §4.2.2): each message is preceded by a two-byte length.
// Client messages are queries, server messages responses; both are decoded with parseDnsMessage.
import { MalformedStreamError } from '../errors.js';
import { FixedGather } from '../byte-gather.js';
import { StreamParserBase } from '../stream-parser-base.js';
import type { Side } from '../types.js';
import { parseDnsMessage } from './dns-message.js';

class SideState {
  readonly gather = new FixedGather();
  /** 0 while reading the length prefix, else the message length being read. */
  messageLength = 0;
  messageStart = 0;
}

export class DnsStreamParser extends StreamParserBase {
  readonly protocol = 'dns' as const;
  private readonly client = new SideState();
  private readonly server = new SideState();

  protected parse(side: Side, chunk: Buffer, base: number): void {
    const st = side === 'client' ? this.client : this.server;
    let pos = 0;
    while (pos < chunk.length) {
      if (st.messageLength === 0) {
        if (!st.gather.pending) st.messageStart = base + pos;
        const prefix = st.gather.take(chunk, pos, 2);
        pos += st.gather.used;
        if (prefix === null) return;
        const length = prefix.readUInt16BE(0);
        if (length < 12) {
          this.fail(MalformedStreamError, side, st.messageStart, `length prefix ${length} is shorter than a DNS header`);
        }
        st.messageLength = length;
        continue;
      }
      const body = st.gather.take(chunk, pos, st.messageLength);
      pos += st.gather.used;
      if (body === null) return;
      const message = parseDnsMessage(body, side, st.messageStart + 2);
      this.emit({ type: 'dns.message', side, start: st.messageStart, end: st.messageStart + 2 + st.messageLength, message });
      st.messageLength = 0;
    }
  }

  protected finish(side: Side, offset: number): void {
    const st = side === 'client' ? this.client : this.server;
    if (st.messageLength !== 0 || st.gather.pending) this.truncated(side, offset, 'a DNS message');
  }
}
