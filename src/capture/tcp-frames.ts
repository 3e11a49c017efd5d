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
import { EPB_FRAME_OFFSET, frameOf, packetBlock } from './pcapng.js';

const EMPTY = Buffer.alloc(0);

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
  private readonly pseudoSum: number;

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
    // The pseudo-header's addresses sum to the same either way (addition commutes).
    this.pseudoSum = sum16(this.serverIp, 0, this.serverIp.length, sum16(this.clientIp, 0, this.clientIp.length, 0));
  }

  // Each method comes in two forms: the frames (Ethernet frames, for tests and readers of one
  // frame), and the frames already inside their pcapng Enhanced Packet Blocks stamped `micros`
  // (what the tap writes: built once, in place, see ./pcapng.ts packetBlock()).

  /** SYN, SYN-ACK, ACK. */
  handshake(): Buffer[] {
    return this.handshakeBlocks(0).map(frameOf);
  }

  handshakeBlocks(micros: number): Buffer[] {
    const syn = this.segment(micros, 'client', SYN, this.clientSeq, 0, EMPTY, true);
    this.clientSeq = (this.clientSeq + 1) >>> 0;
    const synAck = this.segment(micros, 'server', SYN | ACK, this.serverSeq, this.clientSeq, EMPTY, true);
    this.serverSeq = (this.serverSeq + 1) >>> 0;
    const ack = this.segment(micros, 'client', ACK, this.clientSeq, this.serverSeq, EMPTY);
    return [syn, synAck, ack];
  }

  /** Bytes one side sent: segments with PSH|ACK, each acknowledged by the other side. */
  data(from: Side, bytes: Buffer): Buffer[] {
    return this.dataBlocks(0, from, bytes).map(frameOf);
  }

  dataBlocks(micros: number, from: Side, bytes: Buffer): Buffer[] {
    const to = other(from);
    if (bytes.length <= MAX_SEGMENT_PAYLOAD) {
      // The common case (one segment), without the loop's subarray.
      const data = this.segment(micros, from, PSH | ACK, this.seqOf(from), this.seqOf(to), bytes);
      this.advance(from, bytes.length);
      return [data, this.segment(micros, to, ACK, this.seqOf(to), this.seqOf(from), EMPTY)];
    }
    const out: Buffer[] = [];
    for (let at = 0; at < bytes.length; at += MAX_SEGMENT_PAYLOAD) {
      const part = bytes.subarray(at, Math.min(bytes.length, at + MAX_SEGMENT_PAYLOAD));
      out.push(this.segment(micros, from, PSH | ACK, this.seqOf(from), this.seqOf(to), part));
      this.advance(from, part.length);
      out.push(this.segment(micros, to, ACK, this.seqOf(to), this.seqOf(from), EMPTY));
    }
    return out;
  }

  /** Bytes a side sent that the capture never saw (its pre-buffer was full): the numbers move on. */
  skip(from: Side, length: number): void {
    this.advance(from, length);
  }

  /** One side's FIN, and the other side's acknowledgement of it. */
  fin(from: Side): Buffer[] {
    return this.finBlocks(0, from).map(frameOf);
  }

  finBlocks(micros: number, from: Side): Buffer[] {
    const fin = this.segment(micros, from, FIN | ACK, this.seqOf(from), this.seqOf(other(from)), EMPTY);
    this.advance(from, 1);
    return [fin, this.segment(micros, other(from), ACK, this.seqOf(other(from)), this.seqOf(from), EMPTY)];
  }

  /** One side's reset. */
  rst(from: Side): Buffer[] {
    return this.rstBlocks(0, from).map(frameOf);
  }

  rstBlocks(micros: number, from: Side): Buffer[] {
    return [this.segment(micros, from, RST | ACK, this.seqOf(from), this.seqOf(other(from)), EMPTY)];
  }

  private seqOf(side: Side): number {
    return side === 'client' ? this.clientSeq : this.serverSeq;
  }

  private advance(side: Side, n: number): void {
    if (side === 'client') this.clientSeq = (this.clientSeq + n) >>> 0;
    else this.serverSeq = (this.serverSeq + n) >>> 0;
  }

  /** One segment's frame, written in place inside its packet block; every byte is set (the block is not zeroed). */
  private segment(micros: number, from: Side, flags: number, seq: number, ack: number, payload: Buffer, synOptions = false): Buffer {
    const optLen = synOptions ? 8 : 0; // MSS (4) + NOP (1) + window scale (3)
    const tcpLen = 20 + optLen;
    const ipLen = this.v6 ? 40 : 20;
    const frameLength = 14 + ipLen + tcpLen + payload.length;
    const block = packetBlock(micros, frameLength);
    const o = EPB_FRAME_OFFSET;
    const fromClient = from === 'client';
    // Ethernet II: destination, source (locally administered 02:00:00:00:00:0x), type.
    block.writeUInt32BE(0x02000000, o);
    block.writeUInt16BE(fromClient ? 0x0002 : 0x0001, o + 4);
    block.writeUInt32BE(0x02000000, o + 6);
    block.writeUInt16BE(fromClient ? 0x0001 : 0x0002, o + 10);
    block.writeUInt16BE(this.v6 ? 0x86dd : 0x0800, o + 12);
    const src = fromClient ? this.clientIp : this.serverIp;
    const dst = fromClient ? this.serverIp : this.clientIp;
    const ip = o + 14;
    const segmentLength = tcpLen + payload.length;
    if (this.v6) {
      block.writeUInt32BE(0x60000000, ip);
      block.writeUInt16BE(segmentLength, ip + 4);
      block[ip + 6] = 6; // next header: TCP
      block[ip + 7] = 64; // hop limit
      for (let i = 0; i < 16; i++) {
        block[ip + 8 + i] = src[i]!;
        block[ip + 24 + i] = dst[i]!;
      }
    } else {
      block[ip] = 0x45;
      block[ip + 1] = 0;
      block.writeUInt16BE(20 + segmentLength, ip + 2);
      block.writeUInt16BE(this.ipId++ & 0xffff, ip + 4);
      block.writeUInt16BE(0x4000, ip + 6); // don't fragment
      block[ip + 8] = 64; // TTL
      block[ip + 9] = 6; // TCP
      block[ip + 10] = 0;
      block[ip + 11] = 0;
      for (let i = 0; i < 4; i++) {
        block[ip + 12 + i] = src[i]!;
        block[ip + 16 + i] = dst[i]!;
      }
      block.writeUInt16BE(fold(sum16(block, ip, ip + 20, 0)), ip + 10);
    }
    const t = ip + ipLen;
    block.writeUInt16BE(fromClient ? this.clientPort : this.serverPort, t);
    block.writeUInt16BE(fromClient ? this.serverPort : this.clientPort, t + 2);
    block.writeUInt32BE(seq >>> 0, t + 4);
    block.writeUInt32BE(flags & ACK ? ack >>> 0 : 0, t + 8);
    block[t + 12] = (tcpLen / 4) << 4;
    block[t + 13] = flags;
    // Window: 65,535 in SYNs (never scaled there), else 65,535 << 14 bytes after scaling.
    block.writeUInt16BE(0xffff, t + 14);
    block.writeUInt32BE(0, t + 16); // checksum (below), urgent pointer
    if (synOptions) {
      block[t + 20] = 2; // MSS
      block[t + 21] = 4;
      block.writeUInt16BE(this.v6 ? 65_475 : 65_495, t + 22);
      block[t + 24] = 1; // NOP
      block[t + 25] = 3; // window scale
      block[t + 26] = 3;
      block[t + 27] = 14;
    }
    if (payload.length > 0) payload.copy(block, t + tcpLen);
    // Checksum over the pseudo-header (addresses, protocol, length) and the segment.
    let s = this.pseudoSum;
    s += 6 + segmentLength;
    s = sum16(block, t, o + frameLength, s);
    block.writeUInt16BE(fold(s), t + 16);
    return block;
  }
}

function other(side: Side): Side {
  return side === 'client' ? 'server' : 'client';
}
