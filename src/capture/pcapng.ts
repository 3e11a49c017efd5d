// pcapng blocks (IETF draft-ietf-opsawg-pcapng, the format tcpdump ≥ 4.x, tshark and Wireshark
// read): a Section Header Block, one Interface Description Block (LINKTYPE_ETHERNET, microsecond
// timestamps, the default if_tsresol), and an Enhanced Packet Block per frame. Written by hand:
// the three blocks are ~80 lines, and the npm packages that write captures (pcap-writer and
// friends) write the older libpcap format only, without per-packet comments.
// Little-endian throughout: a reader learns the byte order from the SHB's byte-order magic.

const SHB_TYPE = 0x0a0d0d0a;
const IDB_TYPE = 0x00000001;
const EPB_TYPE = 0x00000006;
const BYTE_ORDER_MAGIC = 0x1a2b3c4d;
const LINKTYPE_ETHERNET = 1;
const OPT_COMMENT = 1;
const SHB_USERAPPL = 4;
const IF_NAME = 2;

function pad4(n: number): number {
  return (n + 3) & ~3;
}

/** Options area: each option (code, length, value padded to 4), then opt_endofopt. */
function options(list: Array<[number, string]>): Buffer {
  if (list.length === 0) return Buffer.alloc(0);
  const parts: Buffer[] = [];
  for (const [code, text] of list) {
    const value = Buffer.from(text, 'utf8');
    const head = Buffer.alloc(4);
    head.writeUInt16LE(code, 0);
    head.writeUInt16LE(value.length, 2);
    parts.push(head, value, Buffer.alloc(pad4(value.length) - value.length));
  }
  parts.push(Buffer.alloc(4)); // opt_endofopt
  return Buffer.concat(parts);
}

function block(type: number, body: Buffer): Buffer {
  const total = 12 + body.length;
  const out = Buffer.alloc(total);
  out.writeUInt32LE(type, 0);
  out.writeUInt32LE(total, 4);
  body.copy(out, 8);
  out.writeUInt32LE(total, total - 4);
  return out;
}

/**
 * Blocks are cut from slabs (allocUnsafeSlow, no zero fill: every byte of a block is written): a
 * frame is built once, in place, inside its block, instead of a frame buffer, a block buffer and a
 * copy between them. A slab's regions are never handed out twice, so a block stays valid while it
 * is referenced (a capture's pending writes, one turn of the event loop); what is kept longer (the
 * tap's pre-buffer) is copied out with ownBlock() so that it does not hold a whole slab.
 */
const SLAB_BYTES = 256 * 1024;
let slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
let slabAt = 0;

function slabTake(n: number): Buffer {
  if (n > SLAB_BYTES >>> 2) return Buffer.allocUnsafeSlow(n);
  if (slabAt + n > SLAB_BYTES) {
    slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
    slabAt = 0;
  }
  const out = slab.subarray(slabAt, slabAt + n);
  slabAt += (n + 7) & ~7;
  return out;
}

/** An Enhanced Packet Block's fixed fields up to the frame (type, length, interface 0, timestamp, lengths). */
function writePacketHeader(out: Buffer, total: number, micros: number, captured: number, onWire: number): void {
  out.writeUInt32LE(EPB_TYPE, 0);
  out.writeUInt32LE(total, 4);
  out.writeUInt32LE(0, 8); // interface id
  const high = Math.floor(micros / 0x100000000);
  out.writeUInt32LE(high >>> 0, 12);
  out.writeUInt32LE((micros - high * 0x100000000) >>> 0, 16);
  out.writeUInt32LE(captured, 20);
  out.writeUInt32LE(onWire, 24);
}

/** Where the frame starts in a block from packetBlock(). */
export const EPB_FRAME_OFFSET = 28;

/**
 * An Enhanced Packet Block without options, for a frame of `frameLength` bytes that the caller
 * writes at EPB_FRAME_OFFSET (every byte of it: the block is not zeroed). Byte for byte what
 * enhancedPacket(micros, frame) gives for that frame.
 */
export function packetBlock(micros: number, frameLength: number): Buffer {
  const padded = pad4(frameLength);
  const total = 32 + padded;
  const out = slabTake(total);
  writePacketHeader(out, total, micros, frameLength, frameLength);
  for (let i = EPB_FRAME_OFFSET + frameLength; i < EPB_FRAME_OFFSET + padded; i++) out[i] = 0;
  out.writeUInt32LE(total, total - 4);
  return out;
}

/** The frame inside a block from packetBlock() (a view). */
export function frameOf(block: Buffer): Buffer {
  return block.subarray(EPB_FRAME_OFFSET, EPB_FRAME_OFFSET + block.readUInt32LE(20));
}

/** The captured length of a block from packetBlock(). */
export function frameLengthOf(block: Buffer): number {
  return block.readUInt32LE(20);
}

/** The same packet with `comment` as its opt_comment (rare: a flow's first frame in a capture, a gap's note). */
export function withComment(block: Buffer, comment: string): Buffer {
  const micros = block.readUInt32LE(12) * 0x100000000 + block.readUInt32LE(16);
  return enhancedPacket(micros, frameOf(block), comment, block.readUInt32LE(24));
}

/** A copy of a block in memory of its own (kept beyond this turn, it must not pin a slab). */
export function ownBlock(block: Buffer): Buffer {
  const out = Buffer.allocUnsafeSlow(block.length);
  block.copy(out, 0);
  return out;
}

/** The file's first bytes: a section (length unknown, as when streaming) and the one interface. */
export function fileHeader(application: string): Buffer {
  const shb = Buffer.alloc(16);
  shb.writeUInt32LE(BYTE_ORDER_MAGIC, 0);
  shb.writeUInt16LE(1, 4); // major
  shb.writeUInt16LE(0, 6); // minor
  shb.writeInt32LE(-1, 8); // section length: -1 = not given (64 bits)
  shb.writeInt32LE(-1, 12);
  const idb = Buffer.alloc(8);
  idb.writeUInt16LE(LINKTYPE_ETHERNET, 0);
  idb.writeUInt32LE(0, 4); // snaplen 0: frames are never cut
  return Buffer.concat([
    block(SHB_TYPE, Buffer.concat([shb, options([[SHB_USERAPPL, application]])])),
    block(IDB_TYPE, Buffer.concat([idb, options([[IF_NAME, 'sidewall']])])),
  ]);
}

/**
 * One frame as an Enhanced Packet Block on interface 0. `micros` is the time since the Unix epoch
 * in microseconds (if_tsresol 6, the default); `comment` becomes opt_comment (Wireshark shows it);
 * `originalLength`: the packet's length when `frame` holds only its beginning.
 */
export function enhancedPacket(micros: number, frame: Buffer, comment?: string, originalLength = frame.length): Buffer {
  const opts = comment === undefined ? Buffer.alloc(0) : options([[OPT_COMMENT, comment]]);
  const padded = pad4(frame.length);
  const total = 32 + padded + opts.length;
  const out = Buffer.alloc(total);
  // On the wire: more than captured when the frame was cut.
  writePacketHeader(out, total, micros, frame.length, Math.max(originalLength, frame.length));
  frame.copy(out, 28);
  opts.copy(out, 28 + padded);
  out.writeUInt32LE(total, total - 4);
  return out;
}
