// The demo's "web" container: a small HTTP API on :8080.
import { createServer } from 'node:http';

createServer((req, res) => {
  const body = JSON.stringify({ container: 'web', method: req.method, path: req.url });
  res.writeHead(req.url === '/healthz' || req.url.startsWith('/api/') ? 200 : 404, { 'content-type': 'application/json' });
  res.end(body + '\n');
}).listen(8080, '0.0.0.0', () => console.log('listening'));
