// The contract between protocol parsers and the enforcing proxy.
//
// A parser is fed the bytes of one TCP connection, both directions, in the order the proxy
// receives them. It answers every chunk with the events it recognised. Every event carries
// absolute byte offsets counted from the first byte of its side's stream, so the proxy can hold
// a side's bytes from an event's `start` until it has decided, then forward or drop exactly
// [start, end). Parsers never throw out of `feed`/`end`: a malformed stream yields a result with
// `error` (stable `code` + offset) and the parser stays inert from then on.
import type { ProtocolError } from './errors.js';

export type Side = 'client' | 'server';


/** Header fields in wire order; names are lower-cased, values as sent (latin1). */
export type HeaderList = ReadonlyArray<readonly [name: string, value: string]>;

interface EventBase {
  readonly side: Side;
  /** Absolute offset of the first byte this event describes. */
  readonly start: number;
  /** Absolute offset one past the last byte this event describes. */
  readonly end: number;
}

/** From `start` on, this side is no longer interpreted (encrypted, tunnelled, upgraded). */
export interface OpaqueEvent extends EventBase {
  readonly type: 'opaque';
  readonly reason: 'tls-encrypted' | 'http-upgrade' | 'http-connect' | 'ssh-encrypted' | 'postgres-tls' | 'postgres-gssenc' | 'mysql-tls';
}

// ---- HTTP/1.x (RFC 9112) -------------------------------------------------------------------

export type Http1BodyFraming =
  | { readonly kind: 'none' }
  | { readonly kind: 'length'; readonly length: number }
  | { readonly kind: 'chunked' }
  | { readonly kind: 'until-close' };

/** A request head was parsed: [start, end) is the request line and headers (blank line incl.). */
export interface Http1RequestEvent extends EventBase {
  readonly type: 'http.request';
  /** 0-based index of the request on this connection; responses refer to it. */
  readonly id: number;
  readonly method: string;
  /** The request-target as sent (origin-form path+query, absolute-form URL, or authority for CONNECT). */
  readonly path: string;
  /** Host header, else the authority of an absolute-form target, else null. */
  readonly host: string | null;
  readonly version: string;
  readonly headers: HeaderList;
  /** Lower-cased Upgrade protocol when the request asks to switch protocols (`h2c`, `websocket`). */
  readonly upgrade: string | null;
  readonly expectContinue: boolean;
  readonly body: Http1BodyFraming;
}

/** The whole request, body included, ends at `end`; `start` is the request's first byte. */
export interface Http1RequestEndEvent extends EventBase {
  readonly type: 'http.request-end';
  readonly id: number;
  readonly bodyBytes: number;
}

export interface Http1ResponseEvent extends EventBase {
  readonly type: 'http.response';
  /** The request this answers (in order); null when the server answered no request. */
  readonly requestId: number | null;
  readonly status: number;
  readonly reason: string;
  readonly version: string;
  readonly headers: HeaderList;
  /** 1xx other than 101: the request still awaits its final response. */
  readonly interim: boolean;
  readonly body: Http1BodyFraming;
}

export interface Http1ResponseEndEvent extends EventBase {
  readonly type: 'http.response-end';
  readonly requestId: number | null;
  readonly bodyBytes: number;
}

/**
 * The server accepted an Upgrade (101) or a CONNECT (2xx); [start, end) is that response.
 * Both sides stop being HTTP/1: client bytes from `clientOffset`, server bytes from `end`.
 * For `h2c` the parser continues with HTTP/2 events (stream 1 is the upgraded request).
 */
export interface Http1SwitchEvent extends EventBase {
  readonly type: 'http.switch';
  /** The Upgrade/CONNECT request accepted; null if the server switched unasked. */
  readonly requestId: number | null;
  readonly kind: 'upgrade' | 'connect';
  /** Lower-cased Upgrade token (`h2c`, `websocket`, ...) or, for CONNECT, the target authority. */
  readonly protocol: string;
  readonly clientOffset: number;
}

// ---- HTTP/2 (RFC 9113) and HPACK (RFC 7541) ------------------------------------------------

export type Http2FrameTypeName =
  | 'DATA' | 'HEADERS' | 'PRIORITY' | 'RST_STREAM' | 'SETTINGS' | 'PUSH_PROMISE' | 'PING'
  | 'GOAWAY' | 'WINDOW_UPDATE' | 'CONTINUATION' | 'UNKNOWN';

/** The 24-octet client connection preface (RFC 9113 §3.4). */
export interface Http2PrefaceEvent extends EventBase {
  readonly type: 'http2.preface';
}

/**
 * Emitted as soon as a frame header is read ("announced"): `end` is where the frame will end,
 * possibly beyond the bytes fed so far, so a proxy can drop a denied stream's frame at once.
 */
export interface Http2FrameEvent extends EventBase {
  readonly type: 'http2.frame';
  readonly frameType: number;
  readonly frameTypeName: Http2FrameTypeName;
  readonly flags: number;
  readonly streamId: number;
  readonly length: number;
  /** END_STREAM flag on DATA or HEADERS. */
  readonly endStream: boolean;
}

export type HpackRepresentation =
  | 'indexed'                 // §6.1, no table change
  | 'literal-incremental'     // §6.2.1, inserts into the dynamic table
  | 'literal-without-indexing'// §6.2.2
  | 'literal-never-indexed'   // §6.2.3
  | 'size-update';            // §6.3, changes the dynamic table size

/** One field representation inside a header block. */
export interface HpackFieldSpan {
  /** Offsets within the assembled header block (`Http2HeadersEvent.block`). */
  readonly start: number;
  readonly end: number;
  readonly representation: HpackRepresentation;
  /** True when the decoder's dynamic table changes (insert or size update). */
  readonly mutatesTable: boolean;
  /** Decoded field (empty for size updates). */
  readonly name: string;
  readonly value: string;
}

export interface GrpcCall {
  readonly service: string;
  readonly method: string;
}

/**
 * A complete header block (HEADERS or PUSH_PROMISE plus CONTINUATIONs), decoded.
 * [start, end) spans the first frame's header to the last frame's end.
 */
export interface Http2HeadersEvent extends EventBase {
  readonly type: 'http2.headers';
  readonly streamId: number;
  readonly role: 'request' | 'response' | 'informational' | 'trailers' | 'push-promise';
  /** For push-promise: the promised stream. */
  readonly promisedStreamId: number | null;
  readonly endStream: boolean;
  readonly method: string | null;
  readonly path: string | null;
  readonly authority: string | null;
  readonly scheme: string | null;
  readonly status: number | null;
  /** Regular (non-pseudo) fields in order, names lower-case. */
  readonly headers: HeaderList;
  /** For gRPC requests (`content-type: application/grpc*`): service and method from `:path`. */
  readonly grpc: GrpcCall | null;
  readonly grpcStatus: number | null;
  readonly grpcMessage: string | null;
  /** The assembled header block (padding and priority fields removed). */
  readonly block: Buffer;
  /** Absolute stream offsets of each fragment of the block, in order. */
  readonly fragments: ReadonlyArray<{ readonly start: number; readonly end: number }>;
  readonly fields: readonly HpackFieldSpan[];
  /** True when any field changed the decoder's dynamic table. */
  readonly mutatesTable: boolean;
  /**
   * A single-valued field the block carries more than once (`:method`, `:path`, `:authority`,
   * `:scheme`, `:status`, `content-type`, `host`), or `host` differing from `:authority`
   * (RFC 9113 §8.3.1): receivers disagree on which one counts (grpc-js takes the first
   * content-type, this parser the last), so the request is ambiguous. Null when none.
   */
  readonly ambiguous: string | null;
}

export interface Http2RstStreamEvent extends EventBase {
  readonly type: 'http2.rst-stream';
  readonly streamId: number;
  readonly errorCode: number;
}

export interface Http2GoawayEvent extends EventBase {
  readonly type: 'http2.goaway';
  readonly lastStreamId: number;
  readonly errorCode: number;
  readonly debugData: string;
}

export interface Http2SettingsEvent extends EventBase {
  readonly type: 'http2.settings';
  readonly ack: boolean;
  readonly settings: ReadonlyArray<readonly [id: number, value: number]>;
}

// ---- TLS (RFC 8446, RFC 6066, RFC 7301) ----------------------------------------------------

export interface TlsClientHelloEvent extends EventBase {
  readonly type: 'tls.client-hello';
  /** server_name (RFC 6066 §3) host_name, or null when absent. */
  readonly sni: string | null;
  /** ALPN protocol names offered (RFC 7301). */
  readonly alpn: readonly string[];
  readonly legacyVersion: number;
  /** supported_versions (RFC 8446 §4.2.1), empty when absent. */
  readonly supportedVersions: readonly number[];
  readonly cipherSuites: readonly number[];
  readonly extensionTypes: readonly number[];
}

export interface TlsServerHelloEvent extends EventBase {
  readonly type: 'tls.server-hello';
  /** Negotiated version: supported_versions if present, else legacy_version. */
  readonly version: number;
  readonly versionName: string;
  readonly cipherSuite: number;
  /** ALPN chosen (visible in TLS ≤ 1.2 only; TLS 1.3 sends it encrypted). */
  readonly alpn: string | null;
  readonly helloRetryRequest: boolean;
}

export interface TlsAlertEvent extends EventBase {
  readonly type: 'tls.alert';
  readonly level: number;
  readonly description: number;
}

// ---- DNS (RFC 1035, RFC 7766) --------------------------------------------------------------

export interface DnsQuestion {
  readonly name: string;
  readonly type: number;
  readonly typeName: string;
  readonly class: number;
}

export interface DnsRecordSummary {
  readonly name: string;
  readonly type: number;
  readonly typeName: string;
  readonly ttl: number;
  /** RDLENGTH: the size of the record data. */
  readonly size: number;
}

export interface DnsMessage {
  readonly id: number;
  readonly isResponse: boolean;
  readonly opcode: number;
  readonly flags: {
    readonly aa: boolean; readonly tc: boolean; readonly rd: boolean;
    readonly ra: boolean; readonly ad: boolean; readonly cd: boolean;
  };
  readonly rcode: number;
  readonly rcodeName: string;
  readonly questions: readonly DnsQuestion[];
  /** First question's name ('' when there is none), lower-cased, no trailing dot. */
  readonly qname: string;
  /** First question's type name ('' when there is none). */
  readonly qtype: string;
  readonly answerCount: number;
  readonly authorityCount: number;
  readonly additionalCount: number;
  readonly answers: readonly DnsRecordSummary[];
  /**
   * The names the answer section's CNAME and DNAME records lead to (RFC 1034 §3.6.2, RFC 6672),
   * all of them (not capped like `answers`), in presentation format: what a resolver following
   * the answer would go on to, so the rules can check them as they check the question.
   */
  readonly aliases: readonly string[];
  /** Bytes of the message. */
  readonly size: number;
}

/** One DNS message over TCP; [start, end) includes the 2-byte length prefix. */
export interface DnsMessageEvent extends EventBase {
  readonly type: 'dns.message';
  readonly message: DnsMessage;
}

// ---- SSH (RFC 4253 §4.2), Redis (RESP), PostgreSQL (protocol 3) -----------------------------

export interface SshBannerEvent extends EventBase {
  readonly type: 'ssh.banner';
  readonly protoVersion: string;
  readonly softwareVersion: string;
  readonly comments: string | null;
}

/**
 * A Redis command's facts, emitted once they are read: `end` is where they end; the rest of the
 * command (values) may follow, up to its `redis.command-end`.
 */
export interface RedisCommandEvent extends EventBase {
  readonly type: 'redis.command';
  /** Upper-cased command name (`GET`, `SET`, `AUTH`, ...). */
  readonly command: string;
  /** Upper-cased first argument of container commands (`CONFIG GET`, `CLIENT REPLY`), else null. */
  readonly subcommand: string | null;
  /** The keys, by the command's key spec (redis-commands.ts); null when unknown. */
  readonly keys: readonly string[] | null;
  readonly argCount: number;
  readonly inline: boolean;
}

/** A client command's bytes end here (`start`: its first byte). Also for empty inline lines, which carry nothing. */
export interface RedisCommandEndEvent extends EventBase {
  readonly type: 'redis.command-end';
}

/** One complete top-level server reply (RESP2/RESP3); `push`: an out-of-band RESP3 push (`>`). */
export interface RedisReplyEvent extends EventBase {
  readonly type: 'redis.reply';
  /** The reply's type byte ('+', '-', ':', '$', '*', '%', '>', ...), after any attribute. */
  readonly kind: string;
  readonly push: boolean;
  /** A simple error reply's text (first 200 characters), else null. */
  readonly error: string | null;
}

export interface PostgresStartupEvent extends EventBase {
  readonly type: 'postgres.startup';
  readonly kind: 'startup' | 'ssl-request' | 'gssenc-request' | 'cancel-request';
  readonly protocolVersion: string | null;
  readonly user: string | null;
  readonly database: string | null;
  readonly applicationName: string | null;
  readonly parameters: ReadonlyArray<readonly [string, string]>;
}

/** The server's one-byte answer to SSLRequest/GSSENCRequest ('S'/'G' yes, 'N' no). */
export interface PostgresEncryptionResponseEvent extends EventBase {
  readonly type: 'postgres.encryption-response';
  readonly accepted: boolean;
}

/** A frontend message (type byte + length), announced when its header is read (`end` may lie
 *  beyond the bytes fed so far). */
export interface PostgresMessageEvent extends EventBase {
  readonly type: 'postgres.message';
  readonly messageType: string;
  /** Query ('Q') and Parse ('P'): the query text (the whole message is read; see MAX_QUERY_MESSAGE). */
  readonly query: string | null;
  /** Parse ('P'): the prepared statement's name ('' for the unnamed one). */
  readonly statementName: string | null;
}

/** A backend message, announced when its header is read (`end` may lie beyond the bytes fed so far). */
export interface PostgresBackendEvent extends EventBase {
  readonly type: 'postgres.backend';
  readonly messageType: string;
}

/** ReadyForQuery ('Z') read whole: the transaction status 'I' (idle), 'T' (in a block), 'E' (failed block). */
export interface PostgresReadyEvent extends EventBase {
  readonly type: 'postgres.ready';
  readonly status: string;
}

// ---- MySQL/MariaDB (client/server protocol) ------------------------------------------------

/** Protocol::HandshakeV10, the server's first packet. */
export interface MysqlGreetingEvent extends EventBase {
  readonly type: 'mysql.greeting';
  readonly serverVersion: string;
  readonly capabilities: number;
}

/** HandshakeResponse41 (or, `ssl`, the SSLRequest before TLS: no user or database then). */
export interface MysqlLoginEvent extends EventBase {
  readonly type: 'mysql.login';
  readonly seq: number;
  readonly ssl: boolean;
  readonly user: string | null;
  readonly database: string | null;
  /** Capabilities both sides agreed on; MariaDB extended ones. */
  readonly capabilities: number;
  readonly extCapabilities: number;
}

/** A command packet (sequence id 0) read whole. */
export interface MysqlCommandEvent extends EventBase {
  readonly type: 'mysql.command';
  readonly seq: number;
  readonly code: number;
  /** QUERY, STMT_PREPARE, INIT_DB, ... (or 0xNN). */
  readonly command: string;
  /** COM_QUERY / COM_STMT_PREPARE: the statement text. */
  readonly query: string | null;
  /** COM_INIT_DB / COM_CHANGE_USER: the database. */
  readonly schema: string | null;
  /** COM_CHANGE_USER: the new user. */
  readonly user: string | null;
}

/** A client packet that continues the exchange in progress (auth data, LOCAL INFILE content, a long payload). */
export interface MysqlContinuationEvent extends EventBase {
  readonly type: 'mysql.continuation';
  readonly seq: number;
}

/** A server packet; `head`: its first bytes (up to 16). */
export interface MysqlServerPacketEvent extends EventBase {
  readonly type: 'mysql.server-packet';
  readonly seq: number;
  readonly length: number;
  readonly head: Buffer;
  /** It continues the previous packet's payload (that one was 0xFFFFFF bytes). */
  readonly continued: boolean;
}

/**
 * A message of a protocol whose events are not listed here (one added by its folder alone):
 * `name` says what it is (`<protocol>.<what>`), `fields` carries what was read, [start, end)
 * covers its bytes. Built-in protocols use their own event types.
 */
export interface MessageEvent extends EventBase {
  readonly type: 'message';
  readonly protocol: string;
  readonly name: string;
  readonly fields: Readonly<Record<string, string | number | boolean | null>>;
}

export type ProtocolEvent =
  | OpaqueEvent
  | MessageEvent
  | Http1RequestEvent | Http1RequestEndEvent | Http1ResponseEvent | Http1ResponseEndEvent | Http1SwitchEvent
  | Http2PrefaceEvent | Http2FrameEvent | Http2HeadersEvent | Http2RstStreamEvent | Http2GoawayEvent | Http2SettingsEvent
  | TlsClientHelloEvent | TlsServerHelloEvent | TlsAlertEvent
  | DnsMessageEvent
  | SshBannerEvent
  | RedisCommandEvent | RedisCommandEndEvent | RedisReplyEvent
  | PostgresStartupEvent | PostgresEncryptionResponseEvent | PostgresMessageEvent | PostgresBackendEvent | PostgresReadyEvent
  | MysqlGreetingEvent | MysqlLoginEvent | MysqlCommandEvent | MysqlContinuationEvent | MysqlServerPacketEvent;

export type ProtocolEventType = ProtocolEvent['type'];

export interface ParseResult {
  /**
   * Bytes of the chunk the parser accepted: the whole chunk unless `error` is set, then the
   * bytes before the error. Parsers keep partial messages internally; feed only new bytes.
   */
  readonly consumed: number;
  /** Events completed by this chunk, in stream order. May include events of the other side
   *  (e.g. client bytes held after an Upgrade request are parsed when the server answers). */
  readonly events: readonly ProtocolEvent[];
  readonly error: ProtocolError | null;
}

export interface StreamParser {
  /** The registered protocol (registry.ts ProtocolName) this parser reads. */
  readonly protocol: string;
  /** Feed the next bytes of one side. Never throws. */
  feed(side: Side, chunk: Buffer): ParseResult;
  /** That side closed (FIN). Reports a message cut short. Never throws. */
  end(side: Side): ParseResult;
  /** Bytes of that side fed so far (the absolute offset of the next byte). */
  offset(side: Side): number;
  /** The error that stopped the parser, if any. */
  readonly error: ProtocolError | null;
  /** Memory the parser keeps beyond its fixed objects (estimate; HTTP/2: HPACK tables, streams), for the state budget. */
  readonly stateBytes?: number;
  /**
   * The connection is gone: release now what the parser keeps outside the JavaScript heap
   * (HTTP/1: llhttp's state in WASM memory). Nothing is fed after it.
   */
  dispose?(): void;
}
