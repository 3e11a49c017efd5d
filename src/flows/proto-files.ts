// Locates and loads the repository's .proto files (proto/ at the package root) both from the
// TypeScript sources (src/flows) and from the compiled output (dist/src/flows).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import type * as ProtoLoader from '@grpc/proto-loader';

// Loaded on first use: protobufjs costs megabytes of memory a sidecar without gRPC export or
// observers never needs.
let loader: typeof ProtoLoader | null = null;
function protoLoader(): typeof ProtoLoader {
  loader ??= createRequire(import.meta.url)('@grpc/proto-loader') as typeof ProtoLoader;
  return loader;
}

export class ProtoFilesNotFoundError extends Error {
  readonly code = 'SW_PROTO_NOT_FOUND';
  constructor(readonly searchedFrom: string) {
    super(`cannot find the proto/ folder of the sidewall package above ${searchedFrom}; the installation is incomplete`);
    this.name = 'ProtoFilesNotFoundError';
  }
}

let cachedRoot: string | null = null;

export function protoRoot(): string {
  if (cachedRoot !== null) return cachedRoot;
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'proto', 'sidewall', 'flows', 'v1', 'flows.proto'))) {
      cachedRoot = join(dir, 'proto');
      return cachedRoot;
    }
    if (dirname(dir) === dir) throw new ProtoFilesNotFoundError(start);
  }
}

const definitions = new Map<string, ProtoLoader.PackageDefinition>();

/** Loads a .proto (path relative to proto/) once per process. Field names camelCase; 64-bit integers as strings. */
export function loadProto(relativePath: string): ProtoLoader.PackageDefinition {
  let definition = definitions.get(relativePath);
  if (definition === undefined) {
    definition = protoLoader().loadSync(relativePath, {
      includeDirs: [protoRoot()],
      longs: String,
      enums: Number,
      defaults: false,
      oneofs: true,
    });
    definitions.set(relativePath, definition);
  }
  return definition;
}

/** The method definition of service.method from a loaded package definition. */
export function protoMethod(definition: ProtoLoader.PackageDefinition, service: string, method: string): ProtoLoader.MethodDefinition<object, object> {
  const serviceDefinition = definition[service] as ProtoLoader.ServiceDefinition | undefined;
  const methodDefinition = serviceDefinition?.[method];
  if (methodDefinition === undefined) throw new Error(`proto definition has no ${service}/${method}`);
  return methodDefinition as ProtoLoader.MethodDefinition<object, object>;
}
