// The proxy's identity on the wire: every socket it opens carries SO_MARK `mark` (0x539 unless
// configured), which the pod's iptables rules (src/iptables/rules.ts) exempt from redirection
// and require of whoever receives the listeners' connections. Setting a mark needs CAP_NET_ADMIN
// (or CAP_NET_RAW, since Linux 5.17) in the pod's network namespace; app containers get neither,
// while a uid or gid is something a root app can take (setgid(2)). Native code
// (native/socket-mark.c) because Node has no setsockopt and creates a client socket only as it
// connects: the mark must be on the socket before its first packet leaves.
import type { Socket as UdpSocket } from 'node:dgram';
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { isIP, isIPv6, Socket, type NetConnectOpts, type OnReadOpts, type Server, type SocketConstructorOpts } from 'node:net';
import { loadNativeAddon } from './native-addon.js';

export { DEFAULT_PROXY_MARK } from '../iptables/rules.js';

interface SocketMarkAddon {
  setSocketMark(fd: number, mark: number): void;
  socketMark(fd: number): number;
  socketError(fd: number): number;
  resetOnClose(fd: number): number;
  markedSocket(ipv6: boolean, udp: boolean, mark: number, address?: string, port?: number): number;
  closeFd(fd: number): void;
}

const addon = loadNativeAddon<SocketMarkAddon>('socket_mark');

/** Thrown when a socket cannot be marked or bound; `code` is the errno name (EPERM, EADDRINUSE...). */
export interface SocketMarkError extends Error {
  code: string;
}

interface WithHandle {
  _handle?: { fd?: number } | null;
}

function fdOf(owner: Server | Socket): number {
  const fd = (owner as unknown as WithHandle)._handle?.fd;
  if (fd === undefined || fd < 0) throw Object.assign(new Error('the socket has no file descriptor (not listening or already closed)'), { code: 'EBADF' });
  return fd;
}

/**
 * Marks a listening TCP server. SYNs that arrive before the mark is set are dropped by the pod's
 * listener guard (they retransmit), so no connection is ever accepted on an unmarked listener.
 */
export function markServer(server: Server, mark: number): void {
  addon.setSocketMark(fdOf(server), mark);
  rememberTcpConstructor(server);
}

/** Node's TCP handle (what net.Socket wraps), open(fd) on a descriptor made elsewhere. */
interface TcpHandle {
  open(fd: number): number;
  close(): void;
}
type TcpConstructor = new (type: number) => TcpHandle;
/** TCPWrap's SocketType.SOCKET (tcp_wrap constants: SOCKET 0, SERVER 1). */
const TCP_SOCKET = 0;
let tcpConstructor: TcpConstructor | undefined;

/**
 * Keeps the constructor of a listening server's handle (Node's internal TCP class; no public API
 * names it). A dial then wraps its marked descriptor in a TCP handle of its own and gives Socket
 * the handle: `new Socket({ fd })` first asks libuv what the descriptor is (uv_guess_handle:
 * fstat, getsockopt, getsockname), ~15-25 µs of CPU per dial measured here, for a descriptor we
 * just created as a TCP socket.
 */
function rememberTcpConstructor(server: Server): void {
  if (tcpConstructor !== undefined) return;
  const handle = (server as unknown as { _handle?: object | null })._handle;
  const ctor = handle?.constructor as TcpConstructor | undefined;
  if (typeof ctor === 'function' && ctor.name === 'TCP' && typeof (ctor.prototype as Partial<TcpHandle>).open === 'function') tcpConstructor = ctor;
}

/** A TCP handle on `fd`, or undefined (no listener seen yet, or open failed: the caller falls back to { fd }). */
function tcpHandleOn(fd: number): TcpHandle | undefined {
  if (tcpConstructor === undefined) return undefined;
  const handle = new tcpConstructor(TCP_SOCKET);
  if (handle.open(fd) === 0) return handle;
  handle.close(); // the descriptor stays the caller's
  return undefined;
}

/** The mark of a socket or server (getsockopt), e.g. to prove a dial carried it. */
export function markOf(owner: Server | Socket): number {
  return addon.socketMark(fdOf(owner));
}

/** errno number → name (ECONNRESET...), for records. */
const ERRNO_NAMES = new Map<number, string>(Object.entries(osConstants.errno).map(([name, value]) => [value, name]));

/**
 * Why a socket that just reported EOF ('end') really stopped: undefined when the peer's FIN ended
 * its stream, else the errno name of the error that cut it short (ECONNRESET, ETIMEDOUT...).
 *
 * libuv reports bytes followed by an RST that arrive in the same wakeup as bytes + EOF: it takes a
 * short read plus POLLHUP for EOF and never reads the ECONNRESET the kernel keeps for the next
 * read (50 of 50 on loopback), so a truncated stream would be passed on as a complete one. That
 * error is still the socket's pending error (SO_ERROR) when 'end' is emitted; reading it clears it.
 * EPIPE is the kernel's error for an RST after the peer's FIN (tcp_reset in CLOSE_WAIT): the
 * stream was complete, the FIN is what ended it. A socket whose error cannot be read (no
 * descriptor, getsockopt failing) proves no clean end: it counts as cut short (fail closed).
 */
export function endedByReset(socket: Socket): string | undefined {
  const fd = (socket as unknown as WithHandle)._handle?.fd;
  if (fd === undefined || fd < 0) return 'EBADF';
  let err: number;
  try {
    err = addon.socketError(fd);
  } catch (e) {
    return (e as SocketMarkError).code;
  }
  if (err === 0 || err === osConstants.errno.EPIPE) return undefined;
  return ERRNO_NAMES.get(err) ?? `errno ${err}`;
}

/**
 * Ends a socket with an RST, in any state: SO_LINGER {on, 0} (native resetOnClose), then close.
 * Node's resetAndDestroy() cannot: libuv refuses the reset (EINVAL) once end() was called, also
 * while that FIN still waits behind queued bytes, and a plain destroy() then drops those bytes
 * and lets the kernel send a FIN after the part it had: the peer takes a stream cut short for a
 * whole one. A socket still connecting is just destroyed (nothing of a stream has been sent).
 */
export function resetSocket(socket: Socket): void {
  if (socket.destroyed) return;
  const fd = (socket as unknown as WithHandle)._handle?.fd;
  if (!socket.connecting && fd !== undefined && fd >= 0 && addon.resetOnClose(fd) === 0) {
    socket.destroy();
    return;
  }
  // No descriptor to set it on (or setsockopt failed): Node's own reset where libuv allows one.
  if (socket.writableEnded || socket.connecting || socket.readyState === 'readOnly') socket.destroy();
  else socket.resetAndDestroy();
}

export interface MarkedConnectOptions extends Omit<SocketConstructorOpts, 'fd' | 'handle'> {
  host: string;
  port: number;
  mark: number;
  noDelay?: boolean;
  /** As net.connect's: read into the caller's buffers. */
  onread?: OnReadOpts;
}

/**
 * net.connect() with the mark set before the SYN: the descriptor is created natively with SO_MARK,
 * wrapped by net.Socket, then connected. Throws (synchronously) when the mark cannot be set.
 */
export function connectMarked(options: MarkedConnectOptions): Socket {
  const { host, port, mark, ...socketOptions } = options;
  return unconnectedMarked(host, mark, socketOptions).connect({ host, port });
}

/**
 * A net.Socket on a marked, not yet connected descriptor. `noDelay` must be given here: Node 20
 * reads it only in the Socket constructor (connect() ignores it), and sets TCP_NODELAY once
 * connected — without it the upstream leg ran Nagle's algorithm, and a response written in two
 * pieces waited for the server's delayed ACK.
 */
function unconnectedMarked(host: string, mark: number, socketOptions: Omit<SocketConstructorOpts, 'fd' | 'handle'> & { noDelay?: boolean }): Socket {
  const fd = addon.markedSocket(isIPv6(host), false, mark);
  try {
    // manualStart: an unconnected descriptor must not be read from before connect() (Node would
    // otherwise start reading at construction and see the unconnected socket's hang-up as EOF).
    const handle = tcpHandleOn(fd);
    if (handle !== undefined) return new Socket({ ...socketOptions, handle, manualStart: true } as SocketConstructorOpts);
    return new Socket({ ...socketOptions, fd, manualStart: true } as SocketConstructorOpts);
  } catch (err) {
    addon.closeFd(fd);
    throw err;
  }
}

type ConnectFunction = (...args: unknown[]) => Socket;

/**
 * Marks the TCP dials of libraries that call net.connect themselves (grpc-js: the OTLP exporter and
 * the identity controller client), so that the proxy's own control traffic is not redirected back
 * into its outbound listener and policed as the app's. Patches the `net` module object, which is
 * what CommonJS callers read at each call; dials to a host name or a unix path are left as they were
 * (grpc-js resolves names itself and dials addresses). Returns the undo.
 */
export function markLibraryDials(mark: number): () => void {
  const net = createRequire(import.meta.url)('node:net') as { connect: ConnectFunction; createConnection: ConnectFunction };
  const original = net.connect;
  const originalCreate = net.createConnection;
  const patched: ConnectFunction = (...args) => {
    const first = args[0];
    if (typeof first === 'object' && first !== null && !Array.isArray(first)) {
      const options = first as NetConnectOpts & { host?: unknown; fd?: unknown; path?: unknown };
      if (typeof options.host === 'string' && isIP(options.host) !== 0 && options.path === undefined && options.fd === undefined) {
        const listener = typeof args[1] === 'function' ? (args[1] as () => void) : undefined;
        const socket = unconnectedMarked(options.host, mark, { allowHalfOpen: (options as { allowHalfOpen?: boolean }).allowHalfOpen ?? false, noDelay: (options as { noDelay?: boolean }).noDelay ?? false });
        if (options.timeout !== undefined) socket.setTimeout(options.timeout);
        return socket.connect(options, listener);
      }
    }
    return original.apply(net, args);
  };
  net.connect = patched;
  net.createConnection = patched;
  return () => {
    net.connect = original;
    net.createConnection = originalCreate;
  };
}

/**
 * Binds a dgram socket on a marked descriptor: to address:port, or (no address) unbound, for a
 * socket that only sends (the kernel picks its port at the first send).
 */
export async function bindMarkedUdp(socket: UdpSocket, mark: number, ipv6: boolean, address?: string, port = 0): Promise<void> {
  const fd = address === undefined ? addon.markedSocket(ipv6, true, mark) : addon.markedSocket(ipv6, true, mark, address, port);
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      addon.closeFd(fd);
      reject(err);
    };
    socket.once('error', onError);
    socket.bind({ fd }, () => {
      socket.off('error', onError);
      resolve();
    });
  });
}
