// PostgreSQL enforcement (rule block `postgres: {users, databases, statements}`), per the
// frontend/backend protocol 3 message flow:
// * the session: decided on the StartupMessage's user and database (no statement yet: see
//   compile.ts); denied → FATAL ErrorResponse 42501 and the connection ends. After an accepted
//   SSLRequest/GSSENCRequest the session is opaque (TLS is never decrypted): rules naming users,
//   databases or statements cannot be checked, so deny rules with them apply and allow rules with
//   them do not (fail closed).
// * simple query ('Q'): every statement's verbs (sql/sql-statements.ts) are decided; one denied →
//   the query never reaches the server and the client gets ErrorResponse SQLSTATE 42501 and
//   ReadyForQuery (with the transaction status the server last reported), in order after the
//   replies to earlier queries; the session stays usable.
// * extended query: a denied Parse is dropped, and so is every message after it up to Sync (as
//   the server itself discards after an error); the Sync goes on and our ErrorResponse is put just
//   before the server's ReadyForQuery for it. Bind/Execute of statements parsed earlier were
//   decided at their Parse.
// * COPY: CopyData/CopyDone/CopyFail reach the server only while it is in copy-in mode (it said
//   CopyInResponse to an allowed COPY ... FROM STDIN).
import type { Decision } from '../../policy/index.js';
import type { SqlFacts } from '../sql/rule-block.js';
import type { PostgresMessageEvent, ProtocolEvent, Side } from '../types.js';
import { splitStatements, statementTemplate, statementVerbs } from '../sql/sql-statements.js';
import type { EnforcerDeps, EnforcerOp, RoutingEnforcer } from '../../enforcement/types.js';
import { HeldBytes } from '../../enforcement/held-bytes.js';
import { requestFacts } from '../../enforcement/request-facts.js';
import { ClientGate, OpCollector } from '../../enforcement/ordered-replies.js';

interface Pending {
  l7: Record<string, unknown>;
  decision: Decision;
  startedAt: number;
}

type Entry =
  /** A ReadyForQuery the server owes (for a Q, a Sync, a FunctionCall, the startup); `before`: our error to put in front of it. */
  | { kind: 'ready'; before: Buffer | null; info: Pending | null }
  /** Our answer to a denied query (ErrorResponse, then ReadyForQuery with the current status). */
  | { kind: 'answer'; error: Buffer };

/** ErrorResponse (protocol 3 "Message Formats"): severity, SQLSTATE, message. */
export function pgError(severity: 'ERROR' | 'FATAL', code: string, message: string): Buffer {
  const fields = Buffer.from(`S${severity}\0V${severity}\0C${code}\0M${message}\0\0`, 'utf8');
  const head = Buffer.allocUnsafe(5);
  head[0] = 0x45;
  head.writeUInt32BE(4 + fields.length, 1);
  return Buffer.concat([head, fields]);
}

function readyForQuery(status: string): Buffer {
  return Buffer.from([0x5a, 0, 0, 0, 5, status.charCodeAt(0)]);
}

function denialText(decision: Decision, what: string): string {
  return `permission denied by sidewall (rule ${decision.ruleId}): ${what}`;
}

export class PostgresEnforcer implements RoutingEnforcer {
  readonly kind = 'route';
  private readonly out = new OpCollector();
  /** The connection ended (a denied session): nothing more is routed. */
  private closed = false;
  private readonly gate: ClientGate;
  private readonly server = new HeldBytes(0);
  /** End of the last server message whose header was read (bytes past it are an unfinished header). */
  private serverKnown = 0;
  private readonly queue: Entry[] = [];
  /** Answers for when the server is between two messages (nothing is owed). */
  private atBoundary: Buffer[] = [];
  private status = 'I';
  private session: SqlFacts = {};
  /** After a denied Parse: client messages are dropped up to Sync. */
  private discardError: Buffer | null = null;
  private copyIn = false;
  private passing = false;

  constructor(private readonly deps: EnforcerDeps) {
    this.gate = new ClientGate(this.out.toServer);
  }

  get idle(): boolean {
    return this.gate.idle && this.queue.length === 0 && this.server.size === 0;
  }

  route(side: Side, chunk: Buffer, events: readonly ProtocolEvent[], forwarded = false): readonly EnforcerOp[] {
    if (this.closed) return this.out.take();
    if (this.passing) {
      if (!forwarded) this.out.push({ op: 'send', to: side === 'client' ? 'server' : 'client', bytes: chunk });
      return this.out.take();
    }
    if (side === 'server') {
      this.routeServer(chunk, events, forwarded);
      return this.out.take();
    }
    this.gate.push(chunk);
    for (const ev of events) {
      if (this.passing || this.closed) break;
      if (ev.type === 'postgres.startup') this.onStartup(ev.start, ev.end, ev.kind, ev.user, ev.database);
      else if (ev.type === 'postgres.message') this.onMessage(ev);
    }
    if (!this.passing && !this.closed) this.gate.pump();
    return this.out.take();
  }

  private decide(sql: SqlFacts): Decision {
    const { ctx } = this.deps;
    return ctx.policy().decide(requestFacts(ctx.facts, 'postgres', { postgres: sql }));
  }

  private onStartup(start: number, end: number, kind: string, user: string | null, database: string | null): void {
    if (kind === 'ssl-request' || kind === 'gssenc-request') {
      this.gate.decide(start, 'forward', null, end);
      return;
    }
    if (user !== null) this.session.user = user;
    if (database !== null) this.session.database = database;
    const decision = this.decide({ ...this.session });
    this.out.push({ op: 'decide', decision, l7: { kind, ...this.session } });
    if (decision.action === 'deny') {
      this.closed = true;
      if (kind === 'startup') this.out.toClient(pgError('FATAL', '42501', denialText(decision, `user ${JSON.stringify(user ?? '')} on database ${JSON.stringify(database ?? '')}`)));
      this.out.push({ op: 'close', how: 'fin', reason: 'denied' });
      return;
    }
    this.gate.decide(start, 'forward', null, end);
    if (kind === 'startup') this.queue.push({ kind: 'ready', before: null, info: null });
  }

  private onMessage(ev: PostgresMessageEvent): void {
    const type = ev.messageType;
    if (this.discardError !== null && type !== 'S') {
      this.gate.decide(ev.start, 'drop', null, ev.end);
      return;
    }
    switch (type) {
      case 'Q':
      case 'P':
      case 'F': {
        const statements = ev.query === null ? [] : splitStatements(ev.query, 'postgres');
        const verbs = type === 'F' ? ['CALL'] : statementVerbs(statements);
        let decision: Decision | null = null;
        for (const verb of verbs) {
          const d = this.decide({ ...this.session, statement: verb });
          if (decision === null || (d.action === 'deny' && decision.action !== 'deny') || (d.verdict === 'would-deny' && decision.verdict === 'allowed')) decision = d;
          if (d.action === 'deny') break;
        }
        // An empty query (only comments or ';'): the server answers EmptyQueryResponse.
        decision ??= this.decide({ ...this.session });
        const l7: Record<string, unknown> = { ...this.session, message: type, statements: verbs };
        if (verbs[0] !== undefined) l7.statement = verbs[0];
        const tables = [...new Set(statements.flatMap((s) => s.tables))];
        if (tables.length > 0) l7.tables = tables.slice(0, 8);
        if (statements.length > 0) l7.templates = statements.slice(0, 8).map(statementTemplate);
        if (type === 'P' && ev.statementName !== null && ev.statementName !== '') l7.prepared = ev.statementName;
        if (decision.action === 'deny') {
          this.gate.decide(ev.start, 'drop', null, ev.end);
          const error = pgError('ERROR', '42501', denialText(decision, verbs.join(', ') || 'query'));
          if (type === 'P') this.discardError = error;
          else this.answer(error);
          this.out.request({ protocol: 'postgres', l7, decision, durationMs: 0 });
          return;
        }
        this.gate.decide(ev.start, 'forward', null, ev.end);
        if (type === 'P') this.out.request({ protocol: 'postgres', l7, decision, durationMs: 0 });
        else this.queue.push({ kind: 'ready', before: null, info: { l7, decision, startedAt: performance.now() } });
        return;
      }
      case 'S':
        this.gate.decide(ev.start, 'forward', null, ev.end);
        this.queue.push({ kind: 'ready', before: this.discardError, info: null });
        this.discardError = null;
        return;
      case 'd':
      case 'c':
      case 'f':
        // Copy data only while the server is taking it: never a way to slip bytes past a denial.
        this.gate.decide(ev.start, this.copyIn ? 'forward' : 'drop', null, ev.end);
        return;
      default:
        this.gate.decide(ev.start, 'forward', null, ev.end);
    }
  }

  /** Our ErrorResponse + ReadyForQuery, after everything the server still owes. */
  private answer(error: Buffer): void {
    if (this.queue.length > 0) {
      this.queue.push({ kind: 'answer', error });
      return;
    }
    const bytes = Buffer.concat([error, readyForQuery(this.status)]);
    if (this.server.size === 0 && this.serverKnown <= this.server.end) this.out.toClient(bytes);
    else this.atBoundary.push(bytes);
  }

  private readonly toClient = (b: Buffer): void => this.out.toClient(b);

  private routeServer(chunk: Buffer, events: readonly ProtocolEvent[], forwarded: boolean): void {
    if (!forwarded) this.server.push(chunk);
    for (const ev of events) {
      if (ev.type === 'postgres.encryption-response') {
        // One byte ('S', 'G' or 'N'), not a message.
        if (ev.end > this.serverKnown) this.serverKnown = ev.end;
        this.release(ev.end);
        if (ev.accepted) this.goOpaque(ev.end);
        continue;
      }
      if (ev.type === 'postgres.backend') {
        // Bytes go out in one send per chunk, except where an answer of ours goes in between.
        if (this.atBoundary.length > 0) {
          this.release(ev.start);
          this.flushBoundary();
        }
        if (ev.end > this.serverKnown) this.serverKnown = ev.end;
        const t = ev.messageType;
        if (t === 'G' || t === 'W') this.copyIn = true;
        else if (t === 'C' || t === 'E' || t === 'Z') this.copyIn = false;
        if (t === 'Z') {
          const head = this.queue[0];
          if (head?.kind === 'ready' && head.before !== null) {
            this.release(ev.start);
            this.out.toClient(head.before);
            head.before = null;
          }
        }
        continue;
      }
      if (ev.type === 'postgres.ready') {
        this.status = ev.status;
        const head = this.queue[0];
        if (head?.kind === 'ready') {
          this.queue.shift();
          if (head.info !== null) {
            const p = head.info;
            this.out.request({ protocol: 'postgres', l7: p.l7, decision: p.decision, durationMs: performance.now() - p.startedAt });
          }
        }
        if (this.queue[0]?.kind === 'answer') this.release(ev.end);
        while (this.queue[0]?.kind === 'answer') {
          const a = this.queue.shift() as { error: Buffer };
          this.out.toClient(Buffer.concat([a.error, readyForQuery(this.status)]));
        }
      }
    }
    if (this.passing) return;
    // Everything up to the last known message boundary or inside a message goes on; an unfinished
    // header is held (5 bytes at most) so an answer can still go in front of a ReadyForQuery.
    this.release(Math.min(this.server.end, Math.max(this.serverKnown, this.server.start)));
    if (this.serverKnown >= this.server.end) this.release(this.server.end);
    if (this.serverKnown === this.server.end) this.flushBoundary();
  }

  private release(to: number): void {
    if (to > this.server.start) this.server.release(Math.min(to, this.server.end), this.toClient);
  }

  private flushBoundary(): void {
    if (this.atBoundary.length === 0) return;
    for (const b of this.atBoundary) this.out.toClient(b);
    this.atBoundary = [];
  }

  /** TLS/GSS accepted: what follows is opaque; the session is decided without user or database. */
  private goOpaque(at: number): void {
    this.release(at);
    const decision = this.decide({ encrypted: true });
    this.out.push({ op: 'decide', decision, l7: { kind: 'ssl-request', encrypted: true } });
    if (decision.action === 'deny') {
      this.closed = true;
      this.out.push({ op: 'close', how: 'reset', reason: 'denied' });
      return;
    }
    this.passing = true;
    this.server.release(this.server.end, this.toClient);
    this.gate.flushAll();
  }

  flush(): readonly EnforcerOp[] {
    this.gate.flushAll();
    this.server.release(this.server.end, this.toClient);
    this.passing = true;
    return this.out.take();
  }

  finish(reason: string): readonly EnforcerOp[] {
    for (const e of this.queue) {
      if (e.kind !== 'ready' || e.info === null) continue;
      const p = e.info;
      this.out.request({ protocol: 'postgres', l7: p.l7, decision: p.decision, durationMs: performance.now() - p.startedAt, reason: reason === 'fin' ? 'no-response' : reason });
    }
    this.queue.length = 0;
    return this.out.take();
  }
}
