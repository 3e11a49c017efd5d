// The echo fields of a decoded ICMP/ICMPv6 packet, for the ICMP tunnel monitor (RFC 792 echo:
// type 8 request / 0 reply; RFC 4443 §4.1-4.2: 128 / 129; both: type, code, checksum,
// identifier, sequence number, then the data).
import type { IpPacket } from '../protocols/ip/ip-packet.js';
import type { EchoMessage } from '../tunnels/icmp-tunnel.js';

const ECHO_HEADER = 8;

/**
 * The echo message a packet carries, or null when it is not an echo request or reply (or its
 * header was not copied). Any code: conntrack and our rules match echo by type alone.
 */
export function echoOf(packet: IpPacket, bytes: Uint8Array): EchoMessage | null {
  if (packet.name !== 'icmp') return null;
  const request = packet.family === 4 ? 8 : 128;
  const reply = packet.family === 4 ? 0 : 129;
  if (packet.icmpType !== request && packet.icmpType !== reply) return null;
  const at = packet.transportOffset;
  if (at + ECHO_HEADER > bytes.length) return null;
  const isReply = packet.icmpType === reply;
  return {
    requester: isReply ? packet.dst : packet.src,
    responder: isReply ? packet.src : packet.dst,
    reply: isReply,
    identifier: (bytes[at + 4]! << 8) | bytes[at + 5]!,
    payload: bytes.subarray(at + ECHO_HEADER),
    length: Math.max(0, packet.length - at - ECHO_HEADER),
  };
}
