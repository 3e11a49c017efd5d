// MySQL/MariaDB client/server protocol ("MySQL Client/Server Protocol", dev.mysql.com
// doc/dev/mysql-server/latest/PAGE_PROTOCOL.html; MariaDB's "Clients & Connectors / Client/Server
// Protocol"). Packets: 3-byte little-endian payload length, 1-byte sequence id, payload; a
// payload of 0xFFFFFF bytes continues in the next packet.
// The server speaks first (Protocol::HandshakeV10); the client's first packet is its
// HandshakeResponse41 (user, database) or an SSLRequest (the same 32-byte head, then TLS: both
// sides are opaque from there). After that a client packet with sequence id 0 begins a command
// (COM_QUERY, COM_STMT_PREPARE, COM_INIT_DB, COM_CHANGE_USER, ...); any other sequence id
// continues the exchange in progress (authentication data, LOCAL INFILE content, the rest of a
// payload over 16 MiB). Server packets are framed and their heads reported; which packet ends a
// response depends on the command the server was sent (mysql-responses.ts).
import { HeadTooLargeError, MalformedStreamError } from '../errors.js';
import { FixedGather } from '../byte-gather.js';
import { StreamParserBase } from '../stream-parser-base.js';
import type { Side } from '../types.js';

/** Capability flags used here (include/mysql_com.h). */
export const CLIENT_CONNECT_WITH_DB = 1 << 3;
export const CLIENT_PROTOCOL_41 = 1 << 9;
export const CLIENT_SSL = 1 << 11;
export const CLIENT_SECURE_CONNECTION = 1 << 15;
export const CLIENT_MULTI_STATEMENTS = 1 << 16;
export const CLIENT_PLUGIN_AUTH = 1 << 19;
export const CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 21;
export const CLIENT_DEPRECATE_EOF = 1 << 24;
export const CLIENT_QUERY_ATTRIBUTES = 1 << 27;
/** MariaDB extended capabilities (the last 4 filler bytes): MARIADB_CLIENT_CACHE_METADATA. */
export const MARIADB_CLIENT_CACHE_METADATA = 1 << 4;

/** Command bytes (include/my_command.h). */
export const COM = {
  QUIT: 0x01, INIT_DB: 0x02, QUERY: 0x03, FIELD_LIST: 0x04, STATISTICS: 0x09, PING: 0x0e, CHANGE_USER: 0x11,
  STMT_PREPARE: 0x16, STMT_EXECUTE: 0x17, STMT_SEND_LONG_DATA: 0x18, STMT_CLOSE: 0x19, STMT_RESET: 0x1a,
  SET_OPTION: 0x1b, STMT_FETCH: 0x1c, RESET_CONNECTION: 0x1f, STMT_BULK_EXECUTE: 0xfa,
} as const;

const COMMAND_NAMES: Record<number, string> = Object.fromEntries(Object.entries(COM).map(([k, v]) => [v, k]));

/** A COM_QUERY / COM_STMT_PREPARE is read whole for its statements up to this size. */
export const MAX_MYSQL_QUERY = 1024 * 1024;
/** Server packet bytes kept for the response tracker (OK/EOF status flags, column counts). */
const HEAD_BYTES = 16;
const MAX_PAYLOAD = 0xffffff;

interface SideState {
  readonly header: FixedGather;
  readonly body: FixedGather;
  phase: 'header' | 'capture' | 'skip';
  /** Bytes of the payload captured (the rest is skipped). */
  capture: number;
  start: number;
  seq: number;
  length: number;
  skip: number;
  /** The previous packet had a 0xFFFFFF payload: this one continues it. */
  continued: boolean;
  /** This packet continues the previous one's payload. */
  isContinuation: boolean;
}

const newSide = (): SideState => ({ header: new FixedGather(), body: new FixedGather(), phase: 'header', capture: 0, start: 0, seq: 0, length: 0, skip: 0, continued: false, isContinuation: false });

export class MysqlParser extends StreamParserBase {
  readonly protocol = 'mysql' as const;
  private readonly client = newSide();
  private readonly server = newSide();
  private greeted = false;
  private loggedIn = false;
  private serverCaps = 0;
  private serverExtCaps = 0;
  private loginSeen = false;
  /** Capabilities both sides agreed on. */
  private negotiated = 0;

  protected parse(side: Side, chunk: Buffer, base: number): void {
    const st = side === 'client' ? this.client : this.server;
    let pos = 0;
    while (pos < chunk.length && !this.isOpaque(side)) {
      switch (st.phase) {
        case 'header': {
          if (!st.header.pending) st.start = base + pos;
          const h = st.header.take(chunk, pos, 4);
          pos += st.header.used;
          if (h === null) return;
          st.length = h.readUIntLE(0, 3);
          st.seq = h[3]!;
          this.onHeader(side, st);
          break;
        }
        case 'capture': {
          const b = st.body.take(chunk, pos, st.capture);
          pos += st.body.used;
          if (b === null) return;
          st.phase = 'header';
          this.onPayload(side, st, b);
          break;
        }
        case 'skip': {
          const n = Math.min(st.skip, chunk.length - pos);
          pos += n;
          st.skip -= n;
          if (st.skip === 0) st.phase = 'header';
          break;
        }
      }
    }
  }

  private onHeader(side: Side, st: SideState): void {
    const end = st.start + 4 + st.length;
    const continued = st.continued;
    st.isContinuation = continued;
    st.continued = st.length === MAX_PAYLOAD;
    st.capture = st.length;
    if (side === 'server') {
      if (!this.greeted) {
        if (st.length > 64 * 1024) this.fail(MalformedStreamError, side, st.start, `server greeting of ${st.length} bytes`);
        st.phase = 'capture';
        return;
      }
      // Heads only: rows can be large and are never buffered.
      const keep = Math.min(st.length, HEAD_BYTES);
      st.skip = st.length - keep;
      if (keep === 0) {
        this.emit({ type: 'mysql.server-packet', side, start: st.start, end, seq: st.seq, length: st.length, head: Buffer.alloc(0), continued });
        return;
      }
      st.capture = keep;
      st.phase = 'capture';
      return;
    }
    if (!this.greeted) this.fail(MalformedStreamError, side, st.start, 'the client spoke before the server greeting');
    // Authentication data never has sequence id 0: a client packet with seq 0 is a command even
    // before the server's OK (a client that pipelines commands behind its login).
    if (continued || (this.loginSeen && st.seq !== 0)) {
      // The exchange in progress goes on (auth data, LOCAL INFILE content, a long payload's rest).
      this.emit({ type: 'mysql.continuation', side, start: st.start, end, seq: st.seq });
      st.skip = st.length;
      st.phase = st.skip > 0 ? 'skip' : 'header';
      return;
    }
    if (!this.loginSeen) {
      if (st.length > 64 * 1024) this.fail(MalformedStreamError, side, st.start, `handshake response of ${st.length} bytes`);
      st.phase = 'capture';
      return;
    }
    if (st.length === 0) this.fail(MalformedStreamError, side, st.start, 'an empty command packet');
    if (st.length > MAX_MYSQL_QUERY) this.fail(HeadTooLargeError, side, st.start, `a command of ${st.length} bytes (statements are decided on commands up to ${MAX_MYSQL_QUERY})`);
    st.phase = 'capture';
  }

  private onPayload(side: Side, st: SideState, p: Buffer): void {
    const end = st.start + 4 + st.length;
    if (side === 'server') {
      if (!this.greeted) {
        this.onGreeting(st, p, end);
        return;
      }
      if (st.skip > 0) st.phase = 'skip';
      this.emit({ type: 'mysql.server-packet', side, start: st.start, end, seq: st.seq, length: st.length, head: Buffer.from(p), continued: st.isContinuation });
      // Authentication ends with the server's OK (after the login, or an auth switch exchange).
      if (this.loginSeen && !this.loggedIn && !st.isContinuation && p[0] === 0x00) this.loggedIn = true;
      return;
    }
    if (!this.loggedIn && !this.loginSeen) {
      this.onLogin(st, p, end);
      return;
    }
    this.onCommand(st, p, end);
  }

  private onGreeting(st: SideState, p: Buffer, end: number): void {
    if (p[0] === 0xff) {
      // The server refused the connection (too many connections, host blocked): it closes.
      this.greeted = true;
      this.emit({ type: 'mysql.server-packet', side: 'server', start: st.start, end, seq: st.seq, length: st.length, head: Buffer.from(p.subarray(0, HEAD_BYTES)), continued: false });
      return;
    }
    if (p[0] !== 10) this.fail(MalformedStreamError, 'server', st.start, `handshake protocol version ${p[0]}`);
    const nul = p.indexOf(0, 1);
    if (nul < 0 || nul + 1 + 4 + 8 + 1 + 2 > p.length) this.fail(MalformedStreamError, 'server', st.start, 'short server greeting');
    const version = p.toString('latin1', 1, nul);
    let o = nul + 1 + 4 + 8 + 1;
    let caps = p.readUInt16LE(o);
    o += 2;
    if (p.length >= o + 1 + 2 + 2) {
      caps |= p.readUInt16LE(o + 3) << 16;
      // MariaDB: without CLIENT_LONG_PASSWORD (bit 0), bytes 6..9 of the reserved area carry extended capabilities.
      if ((caps & 1) === 0 && p.length >= o + 3 + 2 + 1 + 10) this.serverExtCaps = p.readUInt32LE(o + 3 + 2 + 1 + 6);
    }
    this.serverCaps = caps >>> 0;
    this.greeted = true;
    this.emit({ type: 'mysql.greeting', side: 'server', start: st.start, end, serverVersion: version, capabilities: this.serverCaps });
  }

  private onLogin(st: SideState, p: Buffer, end: number): void {
    if (p.length < 4) this.fail(MalformedStreamError, 'client', st.start, 'short handshake response');
    const caps = p.readUInt32LE(0) >>> 0;
    if ((caps & CLIENT_PROTOCOL_41) === 0) this.fail(MalformedStreamError, 'client', st.start, 'a pre-4.1 handshake response (not supported by current servers)');
    if (p.length < 32) this.fail(MalformedStreamError, 'client', st.start, 'short handshake response');
    const extCaps = p.readUInt32LE(28) >>> 0;
    const negotiated = (caps & this.serverCaps) >>> 0;
    this.negotiated = negotiated;
    const common = {
      type: 'mysql.login' as const, side: 'client' as const, start: st.start, end, seq: st.seq,
      capabilities: negotiated, extCapabilities: (extCaps & this.serverExtCaps) >>> 0,
    };
    if (p.length === 32 && (caps & CLIENT_SSL) !== 0) {
      this.loginSeen = true;
      this.emit({ ...common, ssl: true, user: null, database: null });
      this.markOpaque('client', end, 'mysql-tls');
      this.markOpaque('server', this.offset('server'), 'mysql-tls');
      return;
    }
    let o = 32;
    const userEnd = p.indexOf(0, o);
    if (userEnd < 0) this.fail(MalformedStreamError, 'client', st.start, 'user name not NUL-terminated');
    const user = p.toString('utf8', o, userEnd);
    o = userEnd + 1;
    if ((caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) !== 0) {
      const [n, used] = lenenc(p, o);
      o += used + n;
    } else if ((caps & CLIENT_SECURE_CONNECTION) !== 0) {
      o += 1 + (p[o] ?? 0);
    } else {
      const z = p.indexOf(0, o);
      o = z < 0 ? p.length + 1 : z + 1;
    }
    if (o > p.length) this.fail(MalformedStreamError, 'client', st.start, 'auth response past the packet');
    let database: string | null = null;
    if ((caps & CLIENT_CONNECT_WITH_DB) !== 0 && o < p.length) {
      const z = p.indexOf(0, o);
      if (z < 0) this.fail(MalformedStreamError, 'client', st.start, 'database name not NUL-terminated');
      database = p.toString('utf8', o, z);
      if (database === '') database = null;
    }
    this.loginSeen = true;
    this.emit({ ...common, ssl: false, user, database });
  }

  private onCommand(st: SideState, p: Buffer, end: number): void {
    const code = p[0]!;
    const name = COMMAND_NAMES[code] ?? `0x${code.toString(16)}`;
    let query: string | null = null;
    let schema: string | null = null;
    let user: string | null = null;
    if (code === COM.QUERY || code === COM.STMT_PREPARE) {
      let o = 1;
      if (code === COM.QUERY && (this.negotiated & CLIENT_QUERY_ATTRIBUTES) !== 0) {
        // Query attributes: parameter count, parameter set count (1), then the values. Only an
        // empty set is read; values would need their types (fail closed: refused).
        const [count, used] = lenenc(p, o);
        o += used;
        const [, used2] = lenenc(p, o);
        o += used2;
        if (count !== 0) this.fail(MalformedStreamError, 'client', st.start, 'query attributes with values are not read');
      }
      query = p.toString('utf8', o);
    } else if (code === COM.INIT_DB) {
      schema = p.toString('utf8', 1);
    } else if (code === COM.CHANGE_USER) {
      const z = p.indexOf(0, 1);
      if (z < 0) this.fail(MalformedStreamError, 'client', st.start, 'COM_CHANGE_USER user not NUL-terminated');
      user = p.toString('utf8', 1, z);
      let o = z + 1;
      o += 1 + (p[o] ?? 0); // auth response (CLIENT_SECURE_CONNECTION, as every current client)
      const z2 = p.indexOf(0, o);
      if (o < p.length && z2 >= 0) schema = p.toString('utf8', o, z2) || null;
    }
    this.emit({ type: 'mysql.command', side: 'client', start: st.start, end, seq: st.seq, code, command: name, query, schema, user });
  }

  protected finish(side: Side, offset: number): void {
    const st = side === 'client' ? this.client : this.server;
    if (st.header.pending || st.phase === 'capture' || (st.phase === 'skip' && st.skip > 0)) this.truncated(side, offset, 'a MySQL packet');
  }
}

/** Length-encoded integer: [value, bytes used]. */
export function lenenc(p: Buffer, o: number): [number, number] {
  const b = p[o];
  if (b === undefined) return [0, 1];
  if (b < 0xfb) return [b, 1];
  if (b === 0xfc) return [p.length >= o + 3 ? p.readUInt16LE(o + 1) : 0, 3];
  if (b === 0xfd) return [p.length >= o + 4 ? p.readUIntLE(o + 1, 3) : 0, 4];
  if (b === 0xfe) return [p.length >= o + 9 ? Number(p.readBigUInt64LE(o + 1)) : 0, 9];
  return [0, 1];
}
