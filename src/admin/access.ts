// Who may read the admin port's private endpoints (PRODUCT.md "Admin access"): the flow stream,
// /connections, /learn/model (and captures). Health, probes and metrics are for everyone.
//
// Two ways in:
// 1. The sidecar's own user: a client socket in this network namespace owned by our uid (what
//    `kubectl exec` into sidewall-proxy runs as). The kernel says who owns a socket: the uid column
//    of the client's entry in /proc/net/tcp{,6}, matched on the full 4-tuple. A peer in another pod
//    has no entry here (its socket lives in its own namespace), and an app container's entry shows
//    its own uid. We chose this over a unix socket in the sidecar's filesystem because
//    `sidewall observe` and `sidewall policy learn --from` already speak TCP to 127.0.0.1:15000, and
//    kept the proxy from ever relaying to its own admin port (so the proxy's own uid on a relayed
//    dial can never stand in for the caller): see ProxyServer.isLoop and the nat rules.
// 2. A bearer token from a file the operator mounts (config `admin.tokenFile`), compared in
//    constant time, for callers outside the pod.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';

export type AdminCaller = 'own-user' | 'token' | 'denied';

export interface PeerEndpoints {
  /** The client's address and port, as the admin socket sees them (remoteAddress/remotePort). */
  remoteAddress: string;
  remotePort: number;
  /** The admin socket's own address and port. */
  localAddress: string;
  localPort: number;
}

export interface AdminAccessOptions {
  /** The uid the sidecar runs as (process.getuid()). */
  ownUid: number;
  /** File holding the bearer token; unset: no token is accepted. */
  tokenFile?: string;
  /** True for the pod's own addresses (loopback included): only those can be our own user. */
  isLocal: (ip: string) => boolean;
  /** Where the kernel's socket tables are (tests point it elsewhere). */
  procNet?: string;
}

/** The kernel's hex form of an address in /proc/net/tcp{,6}: 32-bit words in host (little-endian) order. */
export function procNetAddress(ip: string): string | undefined {
  const bytes = ipBytes(ip);
  if (bytes === undefined) return undefined;
  let out = '';
  for (let w = 0; w < bytes.length; w += 4) {
    for (let b = 3; b >= 0; b--) out += bytes[w + b]!.toString(16).padStart(2, '0');
  }
  return out.toUpperCase();
}

function ipBytes(ip: string): number[] | undefined {
  if (isIPv4(ip)) return ip.split('.').map(Number);
  const bare = ip.split('%')[0] ?? '';
  if (!isIPv6(bare)) return undefined;
  let head = bare;
  let tail = '';
  const dbl = bare.indexOf('::');
  if (dbl >= 0) {
    head = bare.slice(0, dbl);
    tail = bare.slice(dbl + 2);
  }
  const words = (part: string): number[] => {
    if (part === '') return [];
    const out: number[] = [];
    for (const group of part.split(':')) {
      if (group.includes('.')) {
        const [a, b, c, d] = group.split('.').map(Number) as [number, number, number, number];
        out.push((a << 8) | b, (c << 8) | d);
      } else out.push(parseInt(group, 16));
    }
    return out;
  };
  const h = words(head);
  const t = words(tail);
  const all = dbl >= 0 ? [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t] : h;
  if (all.length !== 8) return undefined;
  return all.flatMap((w) => [w >> 8, w & 0xff]);
}

function hexPort(port: number): string {
  return port.toString(16).toUpperCase().padStart(4, '0');
}

/**
 * The uid owning the client end of a TCP connection in this network namespace, from
 * /proc/net/tcp{,6}; undefined when no such socket is here (the client is in another namespace).
 */
export async function clientSocketUid(peer: PeerEndpoints, procNet = '/proc/net'): Promise<number | undefined> {
  const unmapped = (ip: string): string => (ip.startsWith('::ffff:') && isIPv4(ip.slice(7)) ? ip.slice(7) : ip);
  const remote = unmapped(peer.remoteAddress);
  const local = unmapped(peer.localAddress);
  const clientHex = procNetAddress(remote);
  const serverHex = procNetAddress(local);
  if (clientHex === undefined || serverHex === undefined) return undefined;
  // The client's own entry: its local end is our remote end, and the other way round.
  const needle = ` ${clientHex}:${hexPort(peer.remotePort)} ${serverHex}:${hexPort(peer.localPort)} `;
  const text = await readFile(`${procNet}/${isIPv4(remote) ? 'tcp' : 'tcp6'}`, 'latin1');
  const at = text.indexOf(needle);
  if (at < 0) return undefined;
  const end = text.indexOf('\n', at);
  // Columns after the addresses: st tx_queue:rx_queue tr:tm->when retrnsmt uid ...
  const fields = text.slice(at + needle.length, end < 0 ? undefined : end).trim().split(/\s+/);
  const uid = Number(fields[4]);
  return Number.isInteger(uid) ? uid : undefined;
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

export class AdminAccess {
  constructor(private readonly options: AdminAccessOptions) {}

  /** Decides a caller of a private endpoint from its connection and its Authorization header. */
  async authorize(peer: PeerEndpoints, authorization: string | undefined): Promise<AdminCaller> {
    if (authorization !== undefined && (await this.tokenMatches(authorization))) return 'token';
    const remote = peer.remoteAddress.startsWith('::ffff:') ? peer.remoteAddress.slice(7) : peer.remoteAddress;
    // Another pod cannot be our user; do not even read the socket tables for it.
    if (!this.options.isLocal(remote)) return 'denied';
    const uid = await clientSocketUid(peer, this.options.procNet).catch(() => undefined);
    return uid === this.options.ownUid ? 'own-user' : 'denied';
  }

  private async tokenMatches(authorization: string): Promise<boolean> {
    const file = this.options.tokenFile;
    if (file === undefined) return false;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (m === null) return false;
    let expected: string;
    try {
      // Read at each request: a rotated Secret applies at once, and requests with a token are rare.
      expected = (await readFile(file, 'utf8')).trim();
    } catch {
      return false; // no file, no token: fail closed
    }
    if (expected === '') return false;
    // Digests have equal length, so the comparison time says nothing about the token.
    return timingSafeEqual(digest(m[1]!), digest(expected));
  }
}
