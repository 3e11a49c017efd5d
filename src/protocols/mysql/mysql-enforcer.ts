// MySQL/MariaDB enforcement (rule block `mysql: {users, databases, statements}`):
// * the session: decided on the HandshakeResponse's user and database (denied: ERR 1045, the
//   connection ends). After an SSLRequest the session is TLS, opaque: deny rules naming users,
//   databases or statements apply, allow rules naming them do not (fail closed).
// * COM_QUERY / COM_STMT_PREPARE: every statement's verbs (sql/sql-statements.ts, MySQL lexing:
//   `#` and `-- ` comments, executable `/*! */` comments read as code, backslash escapes read both
//   ways). One denied → the command never reaches the server; the client gets ERR 1142 (SQLSTATE
//   42000) with the sequence id the server's answer would have had, in order after the responses
//   still owed (mysql-responses.ts tracks where each ends); the session goes on. `USE db` and
//   COM_INIT_DB are decided as a change of database, COM_CHANGE_USER as a new session.
//   COM_STMT_EXECUTE runs a statement decided at its prepare.
import type { Decision } from '../../policy/index.js';
import type { SqlFacts } from '../sql/rule-block.js';
import { COM } from './mysql-parser.js';
import { hasResponse, MysqlResponses } from './mysql-responses.js';
import { splitStatements, statementTemplate, statementVerbs } from '../sql/sql-statements.js';
import type { MysqlCommandEvent, ProtocolEvent, Side } from '../types.js';
import { requestFacts } from '../../enforcement/request-facts.js';
import { ClientGate, OpCollector, ReplyOrder } from '../../enforcement/ordered-replies.js';
import type { EnforcerDeps, EnforcerOp, RoutingEnforcer } from '../../enforcement/types.js';

interface Pending {
  l7: Record<string, unknown>;
  decision: Decision;
  startedAt: number;
}

/** ERR_Packet (protocol 4.1): 0xFF, error code, '#', SQLSTATE, message; `seq`: its sequence id. */
export function mysqlError(seq: number, code: number, sqlState: string, message: string): Buffer {
  const payload = Buffer.concat([Buffer.from([0xff, code & 0xff, code >> 8]), Buffer.from(`#${sqlState}${message}`, 'utf8')]);
  const head = Buffer.alloc(4);
  head.writeUIntLE(payload.length, 0, 3);
  head[3] = seq & 0xff;
  return Buffer.concat([head, payload]);
}

/** ER_TABLEACCESS_DENIED_ERROR: what the server itself answers for a statement the user may not run. */
const ER_TABLEACCESS_DENIED = 1142;
/** ER_ACCESS_DENIED_ERROR (login), ER_DBACCESS_DENIED_ERROR (database). */
const ER_ACCESS_DENIED = 1045;
const ER_DBACCESS_DENIED = 1044;

export class MysqlEnforcer implements RoutingEnforcer {
  readonly kind = 'route';
  private readonly out = new OpCollector();
  private readonly gate: ClientGate;
  private readonly order: ReplyOrder<Pending | null>;
  private readonly responses = new MysqlResponses();
  private session: SqlFacts = {};
  private loggedIn = false;
  private passing = false;
  private closed = false;
  /** What happened to the current exchange's first packet (its continuations follow it). */
  private current: 'forward' | 'drop' = 'forward';

  constructor(private readonly deps: EnforcerDeps) {
    this.gate = new ClientGate(this.out.toServer);
    this.order = new ReplyOrder(this.out.toClient);
  }

  get idle(): boolean {
    return this.gate.idle && this.order.outstanding === 0;
  }

  private decide(sql: SqlFacts): Decision {
    const { ctx } = this.deps;
    return ctx.policy().decide(requestFacts(ctx.facts, 'mysql', { mysql: sql }));
  }

  route(side: Side, chunk: Buffer, events: readonly ProtocolEvent[], forwarded = false): readonly EnforcerOp[] {
    if (this.closed) return this.out.take();
    if (this.passing) {
      if (!forwarded) this.out.push({ op: 'send', to: side === 'client' ? 'server' : 'client', bytes: chunk });
      return this.out.take();
    }
    if (side === 'server') {
      const replies: Array<{ end: number; push: boolean }> = [];
      for (const ev of events) {
        // The greeting and the authentication exchange answer no command: boundaries between
        // packets where an answer of ours may go (as out-of-band replies).
        if (ev.type === 'mysql.greeting') replies.push({ end: ev.end, push: true });
        if (ev.type !== 'mysql.server-packet' || ev.continued) continue;
        if (!this.loggedIn) {
          // Authentication ends with OK (then commands) or ERR (then the server closes).
          if (ev.head[0] === 0x00) this.loggedIn = true;
          replies.push({ end: ev.end, push: true });
          continue;
        }
        // A packet of a response whose end is known; one nobody asked for passes as it is.
        if (this.responses.onPacket(ev.head, ev.length) === true) replies.push({ end: ev.end, push: false });
      }
      if (forwarded) this.order.skipForwarded(chunk.length);
      else {
        this.order.route(chunk, replies, (p) => {
          if (p !== null && p !== undefined) this.out.request({ protocol: 'mysql', l7: p.l7, decision: p.decision, durationMs: performance.now() - p.startedAt });
        });
      }
      return this.out.take();
    }
    this.gate.push(chunk);
    for (const ev of events) {
      if (this.closed || this.passing) break;
      if (ev.type === 'mysql.login') this.onLogin(ev.start, ev.end, ev.seq, ev.ssl, ev.user, ev.database, ev.capabilities, ev.extCapabilities);
      else if (ev.type === 'mysql.continuation') this.gate.decide(ev.start, this.current, null, ev.end);
      else if (ev.type === 'mysql.command') this.onCommand(ev);
    }
    if (!this.closed && !this.passing) this.gate.pump();
    return this.out.take();
  }

  private onLogin(start: number, end: number, seq: number, ssl: boolean, user: string | null, database: string | null, caps: number, extCaps: number): void {
    if (ssl) {
      const decision = this.decide({ encrypted: true });
      this.out.push({ op: 'decide', decision, l7: { encrypted: true } });
      if (decision.action === 'deny') {
        this.closed = true;
        this.out.push({ op: 'close', how: 'reset', reason: 'denied' });
        return;
      }
      this.gate.decide(start, 'forward', null, end);
      this.gate.pump();
      this.gate.flushAll();
      this.passing = true;
      return;
    }
    if (user !== null) this.session.user = user;
    if (database !== null) this.session.database = database;
    this.responses.configure(caps, extCaps);
    const decision = this.decide({ ...this.session });
    this.out.push({ op: 'decide', decision, l7: { ...this.session } });
    if (decision.action === 'deny') {
      this.closed = true;
      this.out.push({ op: 'send', to: 'client', bytes: mysqlError(seq + 1, ER_ACCESS_DENIED, '28000', `Access denied by sidewall (rule ${decision.ruleId}) for user '${user ?? ''}'`) });
      this.out.push({ op: 'close', how: 'fin', reason: 'denied' });
      return;
    }
    this.current = 'forward';
    this.gate.decide(start, 'forward', null, end);
  }

  private onCommand(ev: MysqlCommandEvent): void {
    const l7: Record<string, unknown> = { ...this.session, command: ev.command };
    let decision: Decision | null = null;
    let errCode = ER_TABLEACCESS_DENIED;
    let sqlState = '42000';
    let what = ev.command;
    let nextSession: SqlFacts | null = null;
    if (ev.code === COM.QUERY || ev.code === COM.STMT_PREPARE) {
      const statements = splitStatements(ev.query ?? '', 'mysql');
      const verbs = statementVerbs(statements);
      l7.statements = verbs;
      if (verbs[0] !== undefined) l7.statement = verbs[0];
      const tables = [...new Set(statements.flatMap((s) => s.tables))];
      if (tables.length > 0) l7.tables = tables.slice(0, 8);
      if (statements.length > 0) l7.templates = statements.slice(0, 8).map(statementTemplate);
      what = verbs.join(', ') || ev.command;
      let database = this.session.database;
      for (const s of statements) {
        for (const verb of s.verbs) {
          const d = this.decide({ ...this.session, ...(database !== undefined ? { database } : {}), statement: verb });
          if (decision === null || d.action === 'deny' || (d.verdict === 'would-deny' && decision.verdict === 'allowed')) decision = d;
          if (d.action === 'deny') break;
        }
        if (decision?.action === 'deny') break;
        // USE changes the session's database: decided as such, and the statements after it with it.
        if (s.verbs[0] === 'USE' && s.target !== undefined) {
          database = s.target;
          const d = this.decide({ ...this.session, database });
          if (d.action === 'deny') {
            decision = d;
            errCode = ER_DBACCESS_DENIED;
            break;
          }
          nextSession = { ...this.session, database };
        }
      }
      decision ??= this.decide({ ...this.session });
    } else if (ev.code === COM.INIT_DB || ev.code === COM.CHANGE_USER) {
      const next: SqlFacts = ev.code === COM.CHANGE_USER ? {} : { ...this.session };
      if (ev.user !== null) next.user = ev.user;
      if (ev.schema !== null) next.database = ev.schema;
      decision = this.decide(next);
      Object.assign(l7, next);
      errCode = ev.code === COM.CHANGE_USER ? ER_ACCESS_DENIED : ER_DBACCESS_DENIED;
      if (ev.code === COM.CHANGE_USER) sqlState = '28000';
      what = ev.code === COM.CHANGE_USER ? `user ${next.user ?? ''}` : `database ${next.database ?? ''}`;
      nextSession = next;
    }
    if (decision !== null && decision.action === 'deny') {
      this.current = 'drop';
      this.gate.decide(ev.start, 'drop', null, ev.end);
      this.order.answer(mysqlError(ev.seq + 1, errCode, sqlState, `${what} denied by sidewall (rule ${decision.ruleId})`));
      this.out.request({ protocol: 'mysql', l7, decision, durationMs: 0 });
      return;
    }
    this.current = 'forward';
    this.gate.decide(ev.start, 'forward', null, ev.end);
    if (nextSession !== null) this.session = nextSession;
    if (!hasResponse(ev.code)) {
      if (decision !== null) this.out.request({ protocol: 'mysql', l7, decision, durationMs: 0 });
      return;
    }
    this.responses.expect(ev.code);
    this.order.expect(decision === null ? null : { l7, decision, startedAt: performance.now() });
  }

  flush(): readonly EnforcerOp[] {
    this.gate.flushAll();
    this.order.flushAll();
    this.passing = true;
    return this.out.take();
  }

  finish(reason: string): readonly EnforcerOp[] {
    for (const p of this.order.drain()) {
      if (p === null) continue;
      this.out.request({ protocol: 'mysql', l7: p.l7, decision: p.decision, durationMs: performance.now() - p.startedAt, reason: reason === 'fin' ? 'no-response' : reason });
    }
    return this.out.take();
  }
}
