// Where the server's response to one command ends ("Text Protocol" / "Prepared Statements" /
// "Generic Response Packets" of the MySQL protocol documentation): told which commands the server
// was sent, in order, it reads the heads of the server's packets and says which packet completes
// each response — so an answer of ours to a denied command can go in order between them.
//   OK (0x00) / ERR (0xFF); COM_QUERY and COM_STMT_EXECUTE: a result set (column count, column
//   definitions, EOF unless CLIENT_DEPRECATE_EOF, rows, then EOF — or an OK with a 0xFE header),
//   repeated while the terminator's status says SERVER_MORE_RESULTS_EXISTS; LOCAL INFILE (0xFB)
//   then OK/ERR; COM_STMT_PREPARE: PREPARE_OK then parameter and column definitions (each with
//   EOF unless deprecated); COM_FIELD_LIST: definitions until EOF; COM_STATISTICS: one packet;
//   COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA, COM_QUIT: no response.
import { CLIENT_DEPRECATE_EOF, COM, lenenc, MARIADB_CLIENT_CACHE_METADATA } from './mysql-parser.js';

const SERVER_MORE_RESULTS_EXISTS = 0x0008;
const SERVER_STATUS_CURSOR_EXISTS = 0x0040;

type Phase =
  | { kind: 'first' }
  | { kind: 'defs'; left: number; then: 'rows' | 'params-done' | 'done' }
  | { kind: 'eof'; then: 'rows' | 'params-done' | 'done' }
  | { kind: 'rows' }
  | { kind: 'infile' }
  | { kind: 'until-ok' }
  | { kind: 'fields' }
  | { kind: 'one' };

interface Expected {
  code: number;
  phase: Phase;
  /** COM_STMT_PREPARE: column definitions still to come after the parameters. */
  columns: number;
}

/** Whether a command gets a response at all. */
export function hasResponse(code: number): boolean {
  return code !== COM.STMT_CLOSE && code !== COM.STMT_SEND_LONG_DATA && code !== COM.QUIT;
}

export class MysqlResponses {
  private readonly queue: Expected[] = [];
  private deprecateEof = false;
  private cacheMetadata = false;

  /** The capabilities agreed at login. */
  configure(capabilities: number, extCapabilities: number): void {
    this.deprecateEof = (capabilities & CLIENT_DEPRECATE_EOF) !== 0;
    this.cacheMetadata = (extCapabilities & MARIADB_CLIENT_CACHE_METADATA) !== 0;
  }

  /** The server was sent this command (one with a response). */
  expect(code: number): void {
    this.queue.push({ code, phase: { kind: 'first' }, columns: 0 });
  }

  get pending(): number {
    return this.queue.length;
  }

  /**
   * One server packet (its first bytes and payload length). Returns true when it completes the
   * oldest response; null when no response is expected (a packet nobody asked for).
   */
  onPacket(head: Buffer, length: number): boolean | null {
    const cur = this.queue[0];
    if (cur === undefined) return null;
    const done = this.step(cur, head, length);
    if (done) this.queue.shift();
    return done;
  }

  private isEof(head: Buffer, length: number): boolean {
    return head[0] === 0xfe && length < 9;
  }

  /** The terminator of rows: EOF, or with CLIENT_DEPRECATE_EOF an OK packet with a 0xFE header. */
  private isRowsEnd(head: Buffer, length: number): boolean {
    return head[0] === 0xfe && (this.deprecateEof ? length < 0xffffff : length < 9);
  }

  /** Status flags of an OK packet (header, affected rows, last insert id, status) or an EOF (header, warnings, status). */
  private status(head: Buffer, length: number): number {
    if (head[0] === 0xfe && length < 9) return head.length >= 5 ? head.readUInt16LE(3) : 0;
    let o = 1;
    o += lenenc(head, o)[1];
    o += lenenc(head, o)[1];
    return head.length >= o + 2 ? head.readUInt16LE(o) : 0;
  }

  private step(cur: Expected, head: Buffer, length: number): boolean {
    const first = head[0];
    if (first === 0xff) return true; // ERR ends every response
    const p = cur.phase;
    switch (p.kind) {
      case 'first':
        switch (cur.code) {
          case COM.QUERY:
          case COM.STMT_EXECUTE:
          case COM.STMT_BULK_EXECUTE:
            // A result set's column count is never 0 (that is an OK packet).
            if (first === 0x00) return (this.status(head, length) & SERVER_MORE_RESULTS_EXISTS) === 0;
            if (first === 0xfb && cur.code === COM.QUERY) {
              cur.phase = { kind: 'infile' };
              return false;
            }
            {
              const [columns, used] = lenenc(head, 0);
              const metadataFollows = cur.code === COM.STMT_EXECUTE && this.cacheMetadata ? head[used] !== 0 : true;
              if (metadataFollows && columns > 0) cur.phase = { kind: 'defs', left: columns, then: 'rows' };
              else cur.phase = this.deprecateEof ? { kind: 'rows' } : { kind: 'eof', then: 'rows' };
            }
            return false;
          case COM.STMT_PREPARE: {
            if (first !== 0x00) return true;
            const columns = head.length >= 7 ? head.readUInt16LE(5) : 0;
            const params = head.length >= 9 ? head.readUInt16LE(7) : 0;
            const metadataFollows = this.cacheMetadata ? head[12] !== 0 : true;
            if (!metadataFollows || (columns === 0 && params === 0)) return true;
            cur.columns = columns;
            if (params > 0) cur.phase = { kind: 'defs', left: params, then: 'params-done' };
            else return this.paramsDone(cur);
            return false;
          }
          case COM.FIELD_LIST:
            cur.phase = { kind: 'fields' };
            return this.step(cur, head, length);
          case COM.STATISTICS:
            return true;
          case COM.CHANGE_USER:
            cur.phase = { kind: 'until-ok' };
            return this.step(cur, head, length);
          default:
            // OK / EOF (COM_SET_OPTION answers EOF) / ERR.
            return first === 0x00 || this.isEof(head, length);
        }
      case 'defs':
        p.left--;
        if (p.left > 0) return false;
        if (!this.deprecateEof) {
          cur.phase = { kind: 'eof', then: p.then };
          return false;
        }
        if (p.then === 'rows') {
          cur.phase = { kind: 'rows' };
          return false;
        }
        return p.then === 'params-done' ? this.paramsDone(cur) : true;
      case 'eof':
        if (p.then === 'rows' && (this.status(head, length) & SERVER_STATUS_CURSOR_EXISTS) !== 0) return true;
        if (p.then === 'params-done') return this.paramsDone(cur);
        if (p.then === 'done') return true;
        cur.phase = { kind: 'rows' };
        return false;
      case 'rows':
        if (!this.isRowsEnd(head, length)) return false;
        if ((this.status(head, length) & SERVER_MORE_RESULTS_EXISTS) !== 0) {
          cur.phase = { kind: 'first' };
          return false;
        }
        return true;
      case 'infile':
        // The server's OK/ERR after the client's file content.
        cur.phase = { kind: 'first' };
        return first === 0x00 ? (this.status(head, length) & SERVER_MORE_RESULTS_EXISTS) === 0 : false;
      case 'until-ok':
        return first === 0x00;
      case 'fields':
        return this.isRowsEnd(head, length);
      case 'one':
        return true;
    }
  }

  /** COM_STMT_PREPARE: the parameters are done; the columns follow (or the response is complete). */
  private paramsDone(cur: Expected): boolean {
    if (cur.columns === 0) return true;
    cur.phase = { kind: 'defs', left: cur.columns, then: 'done' };
    cur.columns = 0;
    return false;
  }
}
