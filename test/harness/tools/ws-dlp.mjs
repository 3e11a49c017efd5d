#!/usr/bin/env node
// The WebSocket DLP suite's server and client, both the `ws` package (RFC 6455 with
// permessage-deflate, RFC 7692, context takeover both ways: its defaults with threshold 0, so
// every message is compressed).
// usage: ws-dlp.mjs server HOST PORT
//          prints "listening"; for each connection "seen open <id> <path> <negotiated extensions>",
//          for each message it received whole "seen message <id> <bytes> <sha256> card=<0|1>
//          ssn=<0|1>", and "seen close <id> <code>" when it ends (1006: no close frame, a reset).
//          A message "send-ssn" is answered with a message carrying an SSN after 40 KB of padding
//          ("seen sent-ssn <id>"); any other message is echoed.
//        ws-dlp.mjs client URL SCENARIO
//          clean:  20 messages, every other one in 3 fragments with a ping between them; each echo
//                  must equal what was sent; prints "ok 20", closes normally
//          card:   a first message (its echo awaited: "echoed 1"), then one whose card number is
//                  split over 3 fragments, a ping between each, 50 ms apart
//          ssn:    asks for the SSN message; prints "message <bytes> ssn=<0|1>" for what arrives
//          bomb:   one 4 MiB message of one repeated byte (compressed to a few KB)
//        Every scenario prints "closed <code>" at the end (1006: the connection was reset).
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket, WebSocketServer } from 'ws';

const [mode, ...args] = process.argv.slice(2);
const sha = (b) => createHash('sha256').update(b).digest('hex');
const CARD = /4111 1111 1111 1111/;
const SSN = /536-22-1234/;
const DEFLATE = { threshold: 0 };

if (mode === 'server') {
  const [host, port] = args;
  const wss = new WebSocketServer({ host, port: Number(port), perMessageDeflate: DEFLATE });
  let ids = 0;
  wss.on('listening', () => console.log('listening'));
  wss.on('connection', (ws, req) => {
    const id = ++ids;
    console.log(`seen open ${id} ${req.url} ${ws.extensions || '-'}`);
    ws.on('message', (data) => {
      const buf = Buffer.isBuffer(data) ? data : Buffer.concat(data);
      const text = buf.toString('latin1');
      console.log(`seen message ${id} ${buf.length} ${sha(buf)} card=${CARD.test(text) ? 1 : 0} ssn=${SSN.test(text) ? 1 : 0}`);
      if (text === 'send-ssn') {
        ws.send(`{"user":"ann","pad":"${'p'.repeat(40_000)}","ssn":"536-22-1234","end":true}`);
        console.log(`seen sent-ssn ${id}`);
      } else ws.send(buf, { binary: false });
    });
    ws.on('error', () => {});
    ws.on('close', (code) => console.log(`seen close ${id} ${code}`));
  });
} else if (mode === 'client') {
  const [url, scenario] = args;
  const ws = new WebSocket(url, { perMessageDeflate: DEFLATE });
  const echoes = [];
  let wake = null;
  ws.on('message', (data) => {
    const text = data.toString('latin1');
    if (scenario === 'ssn') console.log(`message ${data.length} ssn=${SSN.test(text) ? 1 : 0}`);
    echoes.push(text);
    wake?.();
  });
  ws.on('error', (err) => console.log(`error ${err.code ?? err.message}`));
  ws.on('close', (code) => {
    console.log(`closed ${code}`);
    process.exit(0);
  });
  const nextEcho = () => (echoes.length > 0 ? Promise.resolve(echoes.shift()) : new Promise((r) => (wake = () => { wake = null; r(echoes.shift()); })));
  /** Sends a message in fragments, a ping between each, `gap` ms apart. */
  const fragments = async (parts, gap) => {
    for (const [i, p] of parts.entries()) {
      ws.send(p, { fin: i === parts.length - 1 });
      if (i < parts.length - 1) {
        ws.ping(`ping ${i}`);
        if (gap > 0) await sleep(gap);
      }
    }
  };
  ws.on('open', async () => {
    if (scenario === 'clean') {
      for (let i = 0; i < 20; i++) {
        const m = JSON.stringify({ i, ts: new Date(1764767655123 + i * 997).toISOString(), phone: `+1 (415) 555-${1000 + i}`, order: `ORD-2026-${String(i).padStart(6, '0')}`, epochNs: `${1764767655123456789n + BigInt(i)}`, pad: 'q'.repeat(i * 50) });
        if (i % 2 === 0) await fragments([m.slice(0, 7), m.slice(7, 20), m.slice(20)], 0);
        else ws.send(m);
        const echo = await nextEcho();
        if (echo !== m) {
          console.log(`mismatch ${i}`);
          process.exit(1);
        }
      }
      console.log('ok 20');
      ws.close(1000);
    } else if (scenario === 'card') {
      ws.send('{"hello":"before the card"}');
      await nextEcho();
      console.log('echoed 1');
      await fragments([`{"note":"${'n'.repeat(3000)}","card":"4111 1111`, ' 1111', ` 1111","tail":"${'t'.repeat(3000)}"}`], 50);
    } else if (scenario === 'ssn') {
      ws.send('send-ssn');
    } else if (scenario === 'bomb') {
      ws.send(Buffer.alloc(4 << 20, 0x61));
    }
  });
} else {
  console.error('usage: ws-dlp.mjs server HOST PORT | client URL SCENARIO');
  process.exit(2);
}
