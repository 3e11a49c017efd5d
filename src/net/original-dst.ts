// The destination a client dialled before iptables REDIRECT rewrote it to our listener.
// Node has no getsockopt; a ~60-line N-API addon (native/original-dst.c, built by `npm ci`)
// reads SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST from the accepted socket's file descriptor.
import type { Socket } from 'node:net';
import { loadNativeAddon } from './native-addon.js';

export { NativeAddonError } from './native-addon.js';

interface OriginalDstAddon {
  /** "ip|port", or the errno of the failed getsockopt. */
  originalDst(fd: number, ipv6: boolean): string | number;
  /** "ip|port" of the peer (SO_PEERNAME), or the errno. */
  peerAddress(fd: number): string | number;
}

const addon = loadNativeAddon<OriginalDstAddon>('original_dst');

interface HandleWithFd {
  _handle?: { fd?: number } | null;
}

export interface Destination {
  ip: string;
  port: number;
}

/**
 * The pre-NAT destination, or the errno (e.g. ENOENT when the socket was not redirected).
 * `ipv6`: the family of the listener that accepted it, when the caller knows it (an IPv6-only
 * listener: IPv6; an IPv4 one: IPv4), which spares a getsockname(2) per connection; otherwise
 * it is read from the socket's local address.
 */
export function originalDestination(socket: Socket, ipv6?: boolean): Destination | number {
  const fd = (socket as unknown as HandleWithFd)._handle?.fd;
  if (fd === undefined || fd < 0) return -1;
  ipv6 ??= socket.localFamily === 'IPv6' && !(socket.localAddress ?? '').startsWith('::ffff:');
  const answer = addon.originalDst(fd, ipv6);
  if (typeof answer === 'number') return answer;
  const bar = answer.indexOf('|');
  return { ip: answer.slice(0, bar), port: Number(answer.slice(bar + 1)) };
}

/**
 * The client's address and port. Node's remoteAddress (getpeername(2)) is undefined once the
 * socket is closed, as when a client reset its connection before we accepted it (an aborted
 * upload); the socket still holds the address, which SO_PEERNAME returns in any state. Empty
 * address and port 0 only when there is no descriptor at all.
 */
export function peerAddress(socket: Socket): Destination {
  const ip = socket.remoteAddress;
  if (ip !== undefined) return { ip, port: socket.remotePort ?? 0 };
  const fd = (socket as unknown as HandleWithFd)._handle?.fd;
  const answer = fd === undefined || fd < 0 ? -1 : addon.peerAddress(fd);
  if (typeof answer === 'number') return { ip: '', port: 0 };
  const bar = answer.indexOf('|');
  return { ip: answer.slice(0, bar), port: Number(answer.slice(bar + 1)) };
}
