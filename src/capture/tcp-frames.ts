// Synthesized Ethernet + IPv4 (RFC 791) / IPv6 (RFC 8200) + TCP (RFC 9293) frames for one relayed
// connection, as the app's end of it saw it: the client's address and port, the ORIGINAL
// destination (before the nat redirect), a three-way handshake, sequence and acknowledgement
// numbers that follow the bytes, FIN and RST. The proxy never sees these packets (it reads a
// byte stream, and needs no CAP_NET_RAW for it): they are rebuilt from the stream so that
// tcpdump/tshark/Wireshark reassemble exactly the bytes that were exchanged.
//
// Checksums are computed (IPv4 header, TCP over the pseudo-header) so that readers that check
// them find nothing wrong. Window scaling (shift 14) is announced in the SYNs: the proxy never
// sends window updates, and an unscaled 64 KiB window would make tshark report "window full".
import { isIPv4, isIPv6 } from 'node:net';

export type Side = 'client' | 'server';

const FIN = 0x01;
const SYN = 0x02;
const RST = 0x04;
const PSH = 0x08;
const ACK = 0x10;

/** Payload per synthesized segment: a read can be up to 64 KiB, an IPv4 packet no more than 65,535 bytes. */
export const MAX_SEGMENT_PAYLOAD = 65_000;

export const CLIENT_MAC = Buffer.from([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);
export const SERVER_MAC = Buffer.from([0x02, 0x00, 0x00, 0x00, 0x00, 0x02]);

/** An address as it goes into a header: 4 bytes, or 16 (an IPv4 address IPv4-mapped) when v6. */
export function addressBytes(ip: string, v6: boolean): Buffer {
  if (!v6) return Buffer.from(ip.split('.').map(Number));
  let text = ip.split('%')[0] ?? '';
  if (isIPv4(text)) text = `::ffff:${text}`;
  // Expand '::' and a trailing dotted quad into eight 16-bit groups.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted !== null) {
    const q = dotted[1]!.split('.').map(Number) as [number, number, number, number];
    text = text.slice(0, dotted.index) + `${((q[0] << 8) | q[1]).toString(16)}:${((q[2] << 8) | q[3]).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16) & 0xffff, i * 2));
  return out;
}

/** One's complement sum of 16-bit words (RFC 1071), not yet folded or inverted. */
export function sum16(buf: Buffer, start: number, end: number, acc: number): number {
  let s = acc;
  let i = start;
  for (; i + 1 < end; i += 2) s += (buf[i]! << 8) | buf[i + 1]!;
  if (i < end) s += buf[i]! << 8;
  return s;
}

export function fold(s: number): number {
  let x = s;
  while (x > 0xffff) x = (x & 0xffff) + Math.floor(x / 0x10000);
  return ~x & 0xffff;
}

/** The frames of one connection; keeps the sequence numbers of both directions. */
export class TcpFrames {
  private readonly v6: boolean;
  private readonly clientIp: Buffer;
  private readonly serverIp: Buffer;
  /** Next sequence number each side sends (the other side's acknowledgement number). */
  private clientSeq: number;
  private serverSeq: number;
  private ipId = 0;
  private readonly clientPort: number;
  private readonly serverPort: number;

  constructor(
    client: { ip: string; port: number },
    server: { ip: string; port: number },
    isn: { client: number; server: number },
  ) {
    this.clientPort = client.port;
    this.serverPort = server.port;
    // Both ends in one family (IPv4-mapped when one is IPv4 and the other is not).
    this.v6 = !(isIPv4(client.ip) && isIPv4(server.ip)) && (isIPv6(client.ip) || isIPv6(server.ip));
    this.clientIp = addressBytes(client.ip, this.v6);
    this.serverIp = addressBytes(server.ip, this.v6);
    this.clientSeq = isn.client >>> 0;
    this.serverSeq = isn.server >>> 0;
  }

  /** SYN, SYN-ACK, ACK. */
  handshake(): Buffer[] {
    const syn = this.segment('client', SYN, this.clientSeq, 0, Buffer.alloc(0), true);
    this.clientSeq = (this.clientSeq + 1) >>> 0;
    const synAck = this.segment('server', SYN | ACK, this.serverSeq, this.clientSeq, Buffer.alloc(0), true);
    this.serverSeq = (this.serverSeq + 1) >>> 0;
    const ack = this.segment('client', ACK, this.clientSeq, this.serverSeq, Buffer.alloc(0));
    return [syn, synAck, ack];
  }

  /** Bytes one side sent: segments with PSH|ACK, each acknowledged by the other side. */
  data(from: Side, bytes: Buffer): Buffer[] {
    const out: Buffer[] = [];
    for (let at = 0; at < bytes.length; at += MAX_SEGMENT_PAYLOAD) {
      const part = bytes.subarray(at, Math.min(bytes.length, at + MAX_SEGMENT_PAYLOAD));
      out.push(this.segment(from, PSH | ACK, this.seqOf(from), this.seqOf(other(from)), part));
      this.advance(from, part.length);
      out.push(this.segment(other(from), ACK, this.seqOf(other(from)), this.seqOf(from), Buffer.alloc(0)));
    }
    return out;
  }

  /** Bytes a side sent that the capture never saw (its pre-buffer was full): the numbers move on. */
  skip(from: Side, length: number): void {
    this.advance(from, length);
  }

  /** One side's FIN, and the other side's acknowledgement of it. */
  fin(from: Side): Buffer[] {
    const fin = this.segment(from, FIN | ACK, this.seqOf(from), this.seqOf(other(from)), Buffer.alloc(0));
    this.advance(from, 1);
    return [fin, this.segment(other(from), ACK, this.seqOf(other(from)), this.seqOf(from), Buffer.alloc(0))];
  }

  /** One side's reset. */
  rst(from: Side): Buffer[] {
    return [this.segment(from, RST | ACK, this.seqOf(from), this.seqOf(other(from)), Buffer.alloc(0))];
  }

  private seqOf(side: Side): number {
    return side === 'client' ? this.clientSeq : this.serverSeq;
  }

  private advance(side: Side, n: number): void {
    if (side === 'client') this.clientSeq = (this.clientSeq + n) >>> 0;
    else this.serverSeq = (this.serverSeq + n) >>> 0;
  }

  private segment(from: Side, flags: number, seq: number, ack: number, payload: Buffer, synOptions = false): Buffer {
    const optLen = synOptions ? 8 : 0; // MSS (4) + NOP (1) + window scale (3)
    const tcpLen = 20 + optLen;
    const ipLen = this.v6 ? 40 : 20;
    const frame = Buffer.alloc(14 + ipLen + tcpLen + payload.length);
    const fromClient = from === 'client';
    // Ethernet II
    (fromClient ? SERVER_MAC : CLIENT_MAC).copy(frame, 0);
    (fromClient ? CLIENT_MAC : SERVER_MAC).copy(frame, 6);
    frame.writeUInt16BE(this.v6 ? 0x86dd : 0x0800, 12);
    const src = fromClient ? this.clientIp : this.serverIp;
    const dst = fromClient ? this.serverIp : this.clientIp;
    const ip = 14;
    const segmentLength = tcpLen + payload.length;
    if (this.v6) {
      frame.writeUInt32BE(0x60000000, ip);
      frame.writeUInt16BE(segmentLength, ip + 4);
      frame[ip + 6] = 6; // next header: TCP
      frame[ip + 7] = 64; // hop limit
      src.copy(frame, ip + 8);
      dst.copy(frame, ip + 24);
    } else {
      frame[ip] = 0x45;
      frame.writeUInt16BE(20 + segmentLength, ip + 2);
      frame.writeUInt16BE(this.ipId++ & 0xffff, ip + 4);
      frame.writeUInt16BE(0x4000, ip + 6); // don't fragment
      frame[ip + 8] = 64; // TTL
      frame[ip + 9] = 6; // TCP
      src.copy(frame, ip + 12);
      dst.copy(frame, ip + 16);
      frame.writeUInt16BE(fold(sum16(frame, ip, ip + 20, 0)), ip + 10);
    }
    const t = 14 + ipLen;
    frame.writeUInt16BE(fromClient ? this.clientPort : this.serverPort, t);
    frame.writeUInt16BE(fromClient ? this.serverPort : this.clientPort, t + 2);
    frame.writeUInt32BE(seq >>> 0, t + 4);
    frame.writeUInt32BE(flags & ACK ? ack >>> 0 : 0, t + 8);
    frame[t + 12] = (tcpLen / 4) << 4;
    frame[t + 13] = flags;
    // Window: 65,535 in SYNs (never scaled there), else 65,535 << 14 bytes after scaling.
    frame.writeUInt16BE(0xffff, t + 14);
    if (synOptions) {
      frame[t + 20] = 2; // MSS
      frame[t + 21] = 4;
      frame.writeUInt16BE(this.v6 ? 65_475 : 65_495, t + 22);
      frame[t + 24] = 1; // NOP
      frame[t + 25] = 3; // window scale
      frame[t + 26] = 3;
      frame[t + 27] = 14;
    }
    payload.copy(frame, t + tcpLen);
    // Checksum over the pseudo-header (addresses, protocol, length) and the segment.
    let s = sum16(src, 0, src.length, 0);
    s = sum16(dst, 0, dst.length, s);
    s += 6 + segmentLength;
    s = sum16(frame, t, frame.length, s);
    frame.writeUInt16BE(fold(s), t + 16);
    return frame;
  }
}

function other(side: Side): Side {
  return side === 'client' ? 'server' : 'client';
}
