// A Node HTTP server (node:http, default options) that logs every request it runs, one line each:
//   seen node METHOD TARGET host=HOST
// /public/switch answers 101 without being asked (an app bug the sidecar must not follow);
// an Upgrade: websocket request is answered 101 websocket (or h2c when its path says /wrong).
import { createServer } from 'node:http';

const [host, port] = process.argv.slice(2);
const server = createServer((req, res) => {
  console.log(`seen node ${req.method} ${req.url} host=${req.headers.host ?? ''}`);
  if (req.url === '/public/switch') {
    // The app now treats the connection as its own stream: whatever arrives, it acts on.
    req.socket.on('data', (d) => console.log(`seen node-after-101 ${JSON.stringify(d.toString('latin1'))}`));
    res.socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    return;
  }
  req.resume();
  req.on('end', () => res.end(`node ${req.url}\n`));
});
server.on('upgrade', (req, socket) => {
  console.log(`seen node ${req.method} ${req.url} host=${req.headers.host ?? ''} upgrade=${req.headers.upgrade}`);
  const proto = req.url === '/public/wrong' ? 'h2c' : 'websocket';
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${proto}\r\nConnection: Upgrade\r\n\r\n`);
  socket.on('data', (d) => {
    console.log(`seen node-upgraded ${JSON.stringify(d.toString('latin1'))}`);
    socket.write(d);
  });
  socket.on('end', () => socket.end());
  socket.on('error', () => undefined);
});
server.listen(Number(port), host, () => console.log('listening'));
