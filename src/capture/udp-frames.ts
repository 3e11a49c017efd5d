// Synthesized Ethernet + IPv4 (RFC 791) / IPv6 (RFC 8200) + UDP (RFC 768) frames for the datagrams
// of a flow the sidecar relays without a TCP connection (DNS over UDP, src/net/dns-udp-proxy.ts):
// the app's address and port and the address it queried, as the app's end saw them (conntrack
// undoes the REDIRECT to the DNS listener), with the payload exactly as sent and received.
// Checksums are computed (IPv4 header, UDP over the pseudo-header) as in ./tcp-frames.ts.
import { isIPv4, isIPv6 } from 'node:net';
import { CLIENT_MAC, SERVER_MAC, addressBytes, fold, sum16 } from './tcp-frames.js';

/** The largest UDP payload an IPv4 packet carries (65,535 − 20 − 8); IPv6 allows 20 more, and nothing bigger is sent. */
export const MAX_UDP_PAYLOAD = 65_507;

export interface UdpEndpoints {
  client: { ip: string; port: number };
  server: { ip: string; port: number };
}

/** One datagram as an Ethernet frame; `ipId` is the IPv4 identification field (ignored for IPv6). */
export function udpFrame(ends: UdpEndpoints, fromClient: boolean, payload: Buffer, ipId = 0): Buffer {
  const v6 = !(isIPv4(ends.client.ip) && isIPv4(ends.server.ip)) && (isIPv6(ends.client.ip) || isIPv6(ends.server.ip));
  const src = addressBytes(fromClient ? ends.client.ip : ends.server.ip, v6);
  const dst = addressBytes(fromClient ? ends.server.ip : ends.client.ip, v6);
  const body = payload.subarray(0, MAX_UDP_PAYLOAD);
  const ipLen = v6 ? 40 : 20;
  const udpLen = 8 + body.length;
  const frame = Buffer.alloc(14 + ipLen + udpLen);
  (fromClient ? SERVER_MAC : CLIENT_MAC).copy(frame, 0);
  (fromClient ? CLIENT_MAC : SERVER_MAC).copy(frame, 6);
  frame.writeUInt16BE(v6 ? 0x86dd : 0x0800, 12);
  const ip = 14;
  if (v6) {
    frame.writeUInt32BE(0x60000000, ip);
    frame.writeUInt16BE(udpLen, ip + 4);
    frame[ip + 6] = 17; // next header: UDP
    frame[ip + 7] = 64;
    src.copy(frame, ip + 8);
    dst.copy(frame, ip + 24);
  } else {
    frame[ip] = 0x45;
    frame.writeUInt16BE(20 + udpLen, ip + 2);
    frame.writeUInt16BE(ipId & 0xffff, ip + 4);
    frame.writeUInt16BE(0x4000, ip + 6); // don't fragment
    frame[ip + 8] = 64;
    frame[ip + 9] = 17; // UDP
    src.copy(frame, ip + 12);
    dst.copy(frame, ip + 16);
    frame.writeUInt16BE(fold(sum16(frame, ip, ip + 20, 0)), ip + 10);
  }
  const u = 14 + ipLen;
  frame.writeUInt16BE(fromClient ? ends.client.port : ends.server.port, u);
  frame.writeUInt16BE(fromClient ? ends.server.port : ends.client.port, u + 2);
  frame.writeUInt16BE(udpLen, u + 4);
  body.copy(frame, u + 8);
  let sum = sum16(src, 0, src.length, 0);
  sum = sum16(dst, 0, dst.length, sum);
  sum += 17 + udpLen;
  sum = sum16(frame, u, frame.length, sum);
  // RFC 768: a computed checksum of 0 is sent as all ones (0 means "none" over IPv4).
  frame.writeUInt16BE(fold(sum) || 0xffff, u + 6);
  return frame;
}
