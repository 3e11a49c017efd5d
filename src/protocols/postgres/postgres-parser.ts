// PostgreSQL frontend/backend protocol 3 ("Frontend/Backend Protocol", chapters "Message Flow"
// and "Message Formats" of the PostgreSQL documentation): the untyped startup packets
// (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest), the server's one-byte answer to
// an encryption request, then typed messages (Byte1 type, Int32 length including itself).
import { FrameTooLargeError, HeadTooLargeError, MalformedStreamError } from '../errors.js';
import { FixedGather } from '../byte-gather.js';
import { StreamParserBase } from '../stream-parser-base.js';
import type { PostgresStartupEvent, Side } from '../types.js';

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
/** The server's limit for a startup packet (src/include/libpq/pqcomm.h MAX_STARTUP_PACKET_LENGTH). */
const MAX_STARTUP_LENGTH = 10000;
/** Typed messages up to 1 GiB (PostgreSQL's MaxAllocSize). */
const MAX_MESSAGE_LENGTH = 0x3fffffff;
/**
 * A Query ('Q') or Parse ('P') message is read whole for the decision on its statements, up to
 * this size; a longer one is refused (ERR_HEAD_TOO_LARGE): its statements could not all be seen.
 */
export const MAX_QUERY_MESSAGE = 1024 * 1024;

const enum Phase {
  StartupHeader,
  StartupBody,
  AwaitEncryptionAnswer,
  MessageHeader,
  MessageQuery,
  MessageSkip,
  ReadyStatus,
}

class SideState {
  readonly gather = new FixedGather();
  phase: Phase;
  start = 0;
  length = 0;
  messageType = '';
  skipRemaining = 0;
  constructor(phase: Phase) {
    this.phase = phase;
  }
}

export class PostgresParser extends StreamParserBase {
  readonly protocol = 'postgres' as const;
  private readonly client = new SideState(Phase.StartupHeader);
  private readonly server = new SideState(Phase.MessageHeader);
  /** The client asked for SSL/GSS encryption; the server's next byte answers. */
  private encryptionRequested: 'ssl' | 'gss' | null = null;

  protected parse(side: Side, chunk: Buffer, base: number): void {
    const st = side === 'client' ? this.client : this.server;
    let pos = 0;
    while (pos < chunk.length && !this.isOpaque(side)) {
      if (side === 'server' && this.encryptionRequested !== null) {
        pos += this.onEncryptionAnswer(chunk[pos]!, base + pos);
        continue;
      }
      switch (st.phase) {
        case Phase.StartupHeader: {
          if (!st.gather.pending) st.start = base + pos;
          const header = st.gather.take(chunk, pos, 8);
          pos += st.gather.used;
          if (header === null) return;
          this.onStartupHeader(header);
          break;
        }
        case Phase.StartupBody: {
          const body = st.gather.take(chunk, pos, st.length - 8);
          pos += st.gather.used;
          if (body === null) return;
          this.onStartupBody(body);
          break;
        }
        case Phase.AwaitEncryptionAnswer:
          // The client must wait for the server's answer before sending more.
          this.fail(MalformedStreamError, 'client', base + pos, 'client sent data before the server answered its encryption request');
          break;
        case Phase.MessageHeader: {
          if (!st.gather.pending) st.start = base + pos;
          const header = st.gather.take(chunk, pos, 5);
          pos += st.gather.used;
          if (header === null) return;
          this.onMessageHeader(side, st, header);
          break;
        }
        case Phase.MessageQuery: {
          const body = st.gather.take(chunk, pos, st.length - 4);
          pos += st.gather.used;
          if (body === null) return;
          const end = st.start + 1 + st.length;
          st.phase = Phase.MessageHeader;
          this.onQueryBody(st, body, end);
          break;
        }
        case Phase.ReadyStatus: {
          const status = chunk[pos]!;
          pos++;
          st.phase = Phase.MessageHeader;
          this.emit({ type: 'postgres.ready', side: 'server', start: st.start, end: st.start + 6, status: String.fromCharCode(status) });
          break;
        }
        case Phase.MessageSkip: {
          const n = Math.min(st.skipRemaining, chunk.length - pos);
          pos += n;
          st.skipRemaining -= n;
          if (st.skipRemaining === 0) st.phase = Phase.MessageHeader;
          break;
        }
      }
    }
  }

  private onStartupHeader(header: Buffer): void {
    const st = this.client;
    const length = header.readUInt32BE(0);
    const code = header.readUInt32BE(4);
    st.length = length;
    const end = st.start + length;
    if ((code === SSL_REQUEST || code === GSSENC_REQUEST) && length === 8) {
      this.encryptionRequested = code === SSL_REQUEST ? 'ssl' : 'gss';
      st.phase = Phase.AwaitEncryptionAnswer;
      this.emit(this.startupEvent(code === SSL_REQUEST ? 'ssl-request' : 'gssenc-request', end, null, []));
      return;
    }
    if (length < 8 || length > MAX_STARTUP_LENGTH) {
      this.fail(MalformedStreamError, 'client', st.start, `startup packet length ${length} out of range`);
    }
    if (code === CANCEL_REQUEST) {
      if (length !== 16) this.fail(MalformedStreamError, 'client', st.start, `CancelRequest of ${length} bytes`);
    } else if (code >>> 16 !== 3) {
      this.fail(MalformedStreamError, 'client', st.start, `unsupported protocol version ${code >>> 16}.${code & 0xffff}`);
    }
    st.messageType = code === CANCEL_REQUEST ? 'cancel' : `${code >>> 16}.${code & 0xffff}`;
    st.phase = Phase.StartupBody;
    if (length === 8) this.onStartupBody(Buffer.alloc(0));
  }

  private onStartupBody(body: Buffer): void {
    const st = this.client;
    const end = st.start + st.length;
    if (st.messageType === 'cancel') {
      this.emit(this.startupEvent('cancel-request', end, null, []));
      st.phase = Phase.MessageSkip; // nothing else is expected; skip whatever follows
      st.skipRemaining = Number.MAX_SAFE_INTEGER;
      return;
    }
    const parameters: Array<readonly [string, string]> = [];
    let pos = 0;
    while (pos < body.length && body[pos] !== 0) {
      const keyEnd = body.indexOf(0, pos);
      const valueEnd = keyEnd < 0 ? -1 : body.indexOf(0, keyEnd + 1);
      if (valueEnd < 0) this.fail(MalformedStreamError, 'client', st.start + 8 + pos, 'startup parameter not NUL-terminated');
      parameters.push([body.toString('utf8', pos, keyEnd), body.toString('utf8', keyEnd + 1, valueEnd)]);
      pos = valueEnd + 1;
    }
    this.emit(this.startupEvent('startup', end, st.messageType, parameters));
    st.phase = Phase.MessageHeader;
  }

  private startupEvent(kind: PostgresStartupEvent['kind'], end: number, version: string | null, parameters: Array<readonly [string, string]>): PostgresStartupEvent {
    const get = (key: string): string | null => parameters.find(([k]) => k === key)?.[1] ?? null;
    const user = get('user');
    return {
      type: 'postgres.startup',
      side: 'client',
      start: this.client.start,
      end,
      kind,
      protocolVersion: version,
      user,
      // The server defaults the database to the user name.
      database: get('database') ?? (kind === 'startup' ? user : null),
      applicationName: get('application_name'),
      parameters,
    };
  }

  /** Returns the bytes the answer took: 1, or 0 when the server answered with a message. */
  private onEncryptionAnswer(answer: number, at: number): number {
    const requested = this.encryptionRequested;
    this.encryptionRequested = null;
    this.client.phase = Phase.StartupHeader;
    if (answer === 0x45 /* E */) {
      // A server too old for the request answers with an ErrorResponse message (and closes).
      this.emit({ type: 'postgres.encryption-response', side: 'server', start: at, end: at, accepted: false });
      return 0;
    }
    const accepted = answer === 0x53 /* S */ || answer === 0x47; /* G */
    if (!accepted && answer !== 0x4e /* N */) {
      this.fail(MalformedStreamError, 'server', at, `unexpected answer 0x${answer.toString(16)} to an encryption request`);
    }
    this.emit({ type: 'postgres.encryption-response', side: 'server', start: at, end: at + 1, accepted });
    if (accepted) {
      const reason = requested === 'gss' ? 'postgres-gssenc' : 'postgres-tls';
      this.markOpaque('client', this.offset('client'), reason);
      this.markOpaque('server', at + 1, reason);
    }
    return 1;
  }

  private onMessageHeader(side: Side, st: SideState, header: Buffer): void {
    const type = header[0]!;
    const length = header.readUInt32BE(1);
    if (length < 4) this.fail(MalformedStreamError, side, st.start, `message length ${length} is below 4`);
    if (length > MAX_MESSAGE_LENGTH) this.fail(FrameTooLargeError, side, st.start, `message of ${length} bytes`);
    if (type < 0x20 || type > 0x7e) this.fail(MalformedStreamError, side, st.start, `invalid message type 0x${type.toString(16)}`);
    st.length = length;
    st.messageType = String.fromCharCode(type);
    if (side === 'client' && (type === 0x51 /* Q */ || type === 0x50 /* P */)) {
      if (length - 4 > MAX_QUERY_MESSAGE) this.fail(HeadTooLargeError, side, st.start, `a ${st.messageType} message of ${length} bytes (statements are decided on messages up to ${MAX_QUERY_MESSAGE})`);
      st.phase = Phase.MessageQuery;
      return;
    }
    if (side === 'client') {
      this.emit({ type: 'postgres.message', side, start: st.start, end: st.start + 1 + length, messageType: st.messageType, query: null, statementName: null });
    } else {
      this.emit({ type: 'postgres.backend', side, start: st.start, end: st.start + 1 + length, messageType: st.messageType });
      if (type === 0x5a /* Z */) {
        if (length !== 5) this.fail(MalformedStreamError, side, st.start, `ReadyForQuery of length ${length}`);
        st.phase = Phase.ReadyStatus;
        return;
      }
    }
    st.skipRemaining = length - 4;
    st.phase = st.skipRemaining > 0 ? Phase.MessageSkip : Phase.MessageHeader;
  }

  /** Q: the query string; P: the statement name, then its query string (then parameter types). */
  private onQueryBody(st: SideState, body: Buffer, end: number): void {
    let statementName: string | null = null;
    let from = 0;
    if (st.messageType === 'P') {
      const nameEnd = body.indexOf(0);
      if (nameEnd < 0) this.fail(MalformedStreamError, 'client', st.start, 'Parse message without a statement name');
      statementName = body.toString('utf8', 0, nameEnd);
      from = nameEnd + 1;
    }
    const nul = body.indexOf(0, from);
    // The server reads the string up to its NUL (pq_getmsgstring); a missing one is its error too.
    if (nul < 0) this.fail(MalformedStreamError, 'client', st.start, `${st.messageType} message: query not NUL-terminated`);
    if (st.messageType === 'Q' && nul !== body.length - 1) this.fail(MalformedStreamError, 'client', st.start, 'Query message: bytes after the query string');
    this.emit({ type: 'postgres.message', side: 'client', start: st.start, end, messageType: st.messageType, query: body.toString('utf8', from, nul), statementName });
  }

  protected finish(side: Side, offset: number): void {
    const st = side === 'client' ? this.client : this.server;
    if (st.gather.pending || st.phase === Phase.StartupBody || st.phase === Phase.MessageQuery || st.phase === Phase.ReadyStatus || (st.phase === Phase.MessageSkip && st.skipRemaining !== Number.MAX_SAFE_INTEGER)) {
      this.truncated(side, offset, 'a PostgreSQL message');
    }
  }
}
