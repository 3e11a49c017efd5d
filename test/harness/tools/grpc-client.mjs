#!/usr/bin/env node
// gRPC test client: runs the calls given, in order, on ONE channel (one HTTP/2 connection), and
// prints one line per call: "<Method> ok <message(s)>" or "<Method> error <code>".
// usage: grpc-client.mjs HOST:PORT Method[:name] ...   (StreamHellos streams 3 replies)
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const [target, ...calls] = process.argv.slice(2);
const proto = grpc.loadPackageDefinition(protoLoader.loadSync(join(dirname(fileURLToPath(import.meta.url)), 'greeter.proto')));
const client = new proto.test.Greeter(target, grpc.credentials.createInsecure());
for (const call of calls) {
  const [method, name = 'sidewall'] = call.split(':');
  const line = await new Promise((resolve) => {
    if (method === 'StreamHellos') {
      const replies = [];
      const stream = client.StreamHellos({ name, count: 3 });
      stream.on('data', (r) => replies.push(r.message));
      stream.on('error', (e) => resolve(`${method} error ${e.code}`));
      stream.on('end', () => resolve(`${method} ok ${replies.join('|')}`));
      return;
    }
    client[method]({ name }, { deadline: Date.now() + 5000 }, (err, reply) => resolve(err ? `${method} error ${err.code}` : `${method} ok ${reply.message}`));
  });
  console.log(line);
}
client.close();
