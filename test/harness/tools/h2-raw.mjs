#!/usr/bin/env node
// Sends hand-built HTTP/2 header blocks (HPACK bytes as hex) on one prior-knowledge connection,
// one HEADERS frame each (END_STREAM unless a DATA payload follows), so a test controls the exact
// field representations (incremental indexing, duplicates). Prints "status <stream> <code>" for
// each response HEADERS it can read (literal or static :status only) and "rst <stream>" for resets.
// usage: h2-raw.mjs HOST PORT STREAMID:HEXBLOCK[:HEXDATA] ...
import { connect } from 'node:net';

const [host, port, ...specs] = process.argv.slice(2);
const frame = (type, flags, stream, payload) => {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type; h[4] = flags; h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
};
const socket = connect(Number(port), host, () => {
  const parts = [Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(4, 0, 0, Buffer.alloc(0))];
  for (const spec of specs) {
    const [id, block, data] = spec.split(':');
    parts.push(frame(1, 0x4 | (data ? 0 : 0x1), Number(id), Buffer.from(block, 'hex')));
    if (data) parts.push(frame(0, 0x1, Number(id), Buffer.from(data, 'hex')));
  }
  socket.write(Buffer.concat(parts));
});
let buf = Buffer.alloc(0);
socket.on('data', (d) => {
  buf = Buffer.concat([buf, d]);
  while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
    const len = buf.readUIntBE(0, 3);
    const type = buf[3];
    const flags = buf[4];
    const stream = buf.readUInt32BE(5) & 0x7fffffff;
    const payload = buf.subarray(9, 9 + len);
    buf = buf.subarray(9 + len);
    if (type === 4 && (flags & 1) === 0) socket.write(frame(4, 1, 0, Buffer.alloc(0)));
    if (type === 3) console.log(`rst ${stream}`);
    if (type === 1) {
      const b = payload[0];
      const code = b === 0x88 ? '200' : b === 0x8d ? '204' : b === 0x8e ? '206' : b === 0x89 ? '304' : b === 0x8b ? '404' : b === 0x8c ? '400' : b === 0x08 ? payload.toString('latin1', 2, 2 + payload[1]) : '?';
      console.log(`status ${stream} ${code}`);
    }
  }
});
socket.on('error', () => {});
setTimeout(() => { socket.destroy(); process.exit(0); }, 1500);
