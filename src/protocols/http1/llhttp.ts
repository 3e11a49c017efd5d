// llhttp — the HTTP/1.x parser of Node's own `node:http` (https://github.com/nodejs/llhttp) — as
// undici compiles it to WebAssembly (undici/lib/llhttp/llhttp*-wasm.js). Driving the very state
// machine Node's servers run, in its strict default mode, is what keeps our framing of a message
// identical to theirs (RFC 9112 as llhttp implements it: no bare LF, no obs-fold, no CL+TE...).
//
// This module only drives llhttp's C API (llhttp_alloc / llhttp_execute / llhttp_resume ...) and
// turns its callbacks into chunk-relative byte offsets; http1-parser.ts gives them meaning.
// Callbacks without a span (message begin, headers complete, message complete) carry no
// position, so the handler may answer LLHTTP_PAUSE: llhttp then stops right after that point and
// `execute` reports the offset (llhttp_get_error_pos), after which the caller resumes.
import { createRequire } from 'node:module';

/** llhttp_errno values we act on (llhttp's constants.ERROR). */
export const LLHTTP_OK = 0;
export const LLHTTP_PAUSED = 21;
export const LLHTTP_PAUSED_UPGRADE = 22;
/** Returned by a span-less callback to learn where llhttp stands (see module comment). */
export const LLHTTP_PAUSE = LLHTTP_PAUSED;

const TYPE_REQUEST = 1;
const TYPE_RESPONSE = 2;

/** Receives llhttp's callbacks; offsets are relative to the chunk being executed. */
export interface LlhttpHandler {
  onMessageBegin(): number;
  onUrl(start: number, end: number): number;
  onStatus(start: number, end: number): number;
  onHeaderField(start: number, end: number): number;
  onHeaderValue(start: number, end: number): number;
  /** 0, 1 = no body (HEAD), 2 = no body and the protocol switches, or LLHTTP_PAUSE. */
  onHeadersComplete(statusCode: number, upgrade: boolean, keepAlive: boolean): number;
  onBody(start: number, end: number): number;
  onMessageComplete(): number;
}

interface LlhttpExports {
  memory: WebAssembly.Memory;
  _initialize?: () => void;
  malloc(size: number): number;
  free(ptr: number): void;
  llhttp_alloc(type: number): number;
  llhttp_free(ptr: number): void;
  llhttp_execute(ptr: number, data: number, len: number): number;
  llhttp_finish(ptr: number): number;
  llhttp_resume(ptr: number): void;
  llhttp_resume_after_upgrade(ptr: number): void;
  llhttp_get_error_pos(ptr: number): number;
  llhttp_get_error_reason(ptr: number): number;
  llhttp_get_method(ptr: number): number;
  llhttp_get_http_major(ptr: number): number;
  llhttp_get_http_minor(ptr: number): number;
  llhttp_get_status_code(ptr: number): number;
  llhttp_method_name(method: number): number;
  llhttp_errno_name(errno: number): number;
}

/** The parser whose `execute` is running: llhttp's callbacks are module-level imports. */
let current: Llhttp | null = null;
let bufferPtr = 0;
let bufferSize = 0;
/** The chunk whose bytes are at bufferPtr (continuing it after a pause needs no copy). */
let loaded: Buffer | null = null;
let wasm: LlhttpExports | null = null;

function load(): LlhttpExports {
  if (wasm !== null) return wasm;
  const require = createRequire(import.meta.url);
  const imports = {
    env: {
      wasm_on_message_begin: (_p: number) => current!.handler.onMessageBegin(),
      wasm_on_url: (_p: number, at: number, len: number) => current!.handler.onUrl(at - bufferPtr, at - bufferPtr + len),
      wasm_on_status: (_p: number, at: number, len: number) => current!.handler.onStatus(at - bufferPtr, at - bufferPtr + len),
      wasm_on_header_field: (_p: number, at: number, len: number) => current!.handler.onHeaderField(at - bufferPtr, at - bufferPtr + len),
      wasm_on_header_value: (_p: number, at: number, len: number) => current!.handler.onHeaderValue(at - bufferPtr, at - bufferPtr + len),
      wasm_on_headers_complete: (_p: number, status: number, upgrade: number, keepAlive: number) =>
        current!.handler.onHeadersComplete(status, upgrade === 1, keepAlive === 1),
      wasm_on_body: (_p: number, at: number, len: number) => current!.handler.onBody(at - bufferPtr, at - bufferPtr + len),
      wasm_on_message_complete: (_p: number) => current!.handler.onMessageComplete(),
    },
  };
  let module: WebAssembly.Module;
  try {
    // The SIMD build is the faster one; engines without WASM SIMD fall back to the plain build.
    module = new WebAssembly.Module(bytesOf(require('undici/lib/llhttp/llhttp_simd-wasm.js')));
  } catch {
    module = new WebAssembly.Module(bytesOf(require('undici/lib/llhttp/llhttp-wasm.js')));
  }
  const exports = new WebAssembly.Instance(module, imports).exports as unknown as LlhttpExports;
  exports._initialize?.();
  wasm = exports;
  return exports;
}

/** A view of WASM memory, made again only when the memory grew (its ArrayBuffer is then a new one). */
let view: Uint8Array = new Uint8Array(0);

function memoryView(w: LlhttpExports): Uint8Array {
  if (view.buffer !== w.memory.buffer) view = new Uint8Array(w.memory.buffer);
  return view;
}

function bytesOf(buf: unknown): Uint8Array<ArrayBuffer> {
  const b = buf as Buffer;
  return new Uint8Array(b.buffer as ArrayBuffer, b.byteOffset, b.length);
}

function cString(w: LlhttpExports, ptr: number): string {
  if (ptr === 0) return '';
  const mem = new Uint8Array(w.memory.buffer);
  let end = ptr;
  while (mem[end] !== 0 && end - ptr < 512) end++;
  return Buffer.from(mem.subarray(ptr, end)).toString('latin1');
}

/** Method names by llhttp_method_t, and version strings by major*10+minor: per request they cost no string. */
const METHOD_NAMES: Array<string | undefined> = [];
const VERSIONS: Array<string | undefined> = [];

/**
 * llhttp_t lives in WASM memory: freed by dispose() when its connection closes, or else when its
 * parser is collected. The registry watches a small object of the parser's own, never the parser:
 * V8's scavenger keeps every FinalizationRegistry target alive (weak cells are cleared only by a
 * full GC), and a registered parser kept its handler and through it the connection's whole graph
 * (sockets, filter, enforcer) alive into the old generation: ~9 KB promoted per HTTP/1 connection,
 * scavenges of 10-35 ms and a mark-compact every few thousand connections.
 */
const registry = new FinalizationRegistry<number>((ptr) => wasm?.llhttp_free(ptr));

/** llhttp was called after dispose(): its llhttp_t is freed (a bug in the caller). */
export class LlhttpDisposedError extends Error {
  constructor() {
    super('llhttp parser used after dispose()');
    this.name = 'LlhttpDisposedError';
  }
}

export class Llhttp {
  private readonly w: LlhttpExports;
  /** The llhttp_t; 0 once disposed. */
  private ptr: number;
  /** What the registry watches: alive exactly as long as this parser (see `registry`). */
  private readonly owner: object = {};
  /**
   * After execute(): the chunk-relative offset where llhttp stopped (paused or failed), the
   * chunk length on OK. A field, not a result object: execute runs three times per message.
   */
  stoppedAt = 0;

  constructor(kind: 'request' | 'response', readonly handler: LlhttpHandler) {
    this.w = load();
    this.ptr = this.w.llhttp_alloc(kind === 'request' ? TYPE_REQUEST : TYPE_RESPONSE);
    registry.register(this.owner, this.ptr, this.owner);
  }

  /** Frees the llhttp_t now (the connection is gone); nothing may be parsed after it. */
  dispose(): void {
    if (this.ptr === 0) return;
    registry.unregister(this.owner);
    this.w.llhttp_free(this.ptr);
    this.ptr = 0;
  }

  /**
   * Runs llhttp over `chunk[from..]`; returns llhttp_errno (LLHTTP_OK, a pause, or an error) and
   * sets `stoppedAt`, relative to `chunk` (not to `from`).
   */
  execute(chunk: Buffer, from = 0): number {
    const w = this.w;
    if (this.ptr === 0) throw new LlhttpDisposedError();
    if (from === 0 || loaded !== chunk) {
      // The whole chunk is copied once; a continuation after a pause executes from inside it.
      if (chunk.length > bufferSize) {
        if (bufferPtr !== 0) w.free(bufferPtr);
        bufferSize = Math.max(16 * 1024, Math.ceil(chunk.length / 4096) * 4096);
        bufferPtr = w.malloc(bufferSize);
      }
      memoryView(w).set(chunk, bufferPtr);
      loaded = chunk;
    }
    const previous = current;
    current = this;
    let code: number;
    try {
      code = w.llhttp_execute(this.ptr, bufferPtr + from, chunk.length - from);
    } finally {
      current = previous;
    }
    this.stoppedAt = code === LLHTTP_OK ? chunk.length : w.llhttp_get_error_pos(this.ptr) - bufferPtr;
    return code;
  }

  finish(): number {
    if (this.ptr === 0) throw new LlhttpDisposedError();
    const previous = current;
    current = this;
    try {
      return this.w.llhttp_finish(this.ptr);
    } finally {
      current = previous;
    }
  }

  resume(): void {
    this.w.llhttp_resume(this.ptr);
  }

  resumeAfterUpgrade(): void {
    this.w.llhttp_resume_after_upgrade(this.ptr);
  }

  /** The method's name: read from llhttp once per method number, then one array load per request. */
  get method(): string {
    const n = this.w.llhttp_get_method(this.ptr);
    return (METHOD_NAMES[n] ??= cString(this.w, this.w.llhttp_method_name(n)));
  }

  /** "major.minor": llhttp accepts one digit each (RFC 9112 §2.3), so 100 strings at most, each made once. */
  get version(): string {
    const key = this.w.llhttp_get_http_major(this.ptr) * 10 + this.w.llhttp_get_http_minor(this.ptr);
    return (VERSIONS[key] ??= `${Math.floor(key / 10)}.${key % 10}`);
  }

  /** `HPE_…: reason` of the last error. */
  errorText(code: number): string {
    return `${cString(this.w, this.w.llhttp_errno_name(code))}: ${cString(this.w, this.w.llhttp_get_error_reason(this.ptr))}`;
  }
}
