// The demo's peer workload (another pod): an HTTP service on :80 and a TCP greeting on :2525.
import { createServer } from 'node:http';
import { createServer as createTcpServer } from 'node:net';

createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`peer says hello to ${req.method} ${req.url}\n`);
}).listen(80, '0.0.0.0', () => {
  createTcpServer((s) => { s.on('error', () => {}); s.end('220 peer smtp ready\r\n'); }).listen(2525, '0.0.0.0', () => console.log('listening'));
});
