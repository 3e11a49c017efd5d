// Message types and the service definition of sidewall.identity.v1.IdentityStream
// (proto/sidewall/identity/v1/identity.proto), shared by the controller and the sidecar client.
import * as grpc from '@grpc/grpc-js';
import type { ServiceDefinition } from '@grpc/proto-loader';
import { loadProto } from '../flows/proto-files.js';

export const IDENTITY_SERVICE = 'sidewall.identity.v1.IdentityStream';

/** One pod IP's identity as it travels (proto field names camelCased by proto-loader). */
export interface WorkloadMessage {
  ip: string;
  namespace?: string;
  pod?: string;
  labels?: Record<string, string>;
  serviceAccount?: string;
  node?: string;
}

export interface ServicePortMessage {
  name?: string;
  port: number;
  targetPort?: string;
  protocol?: string;
}

/** A Service as it travels (proto-loader camelCase). */
export interface ServiceMessage {
  namespace: string;
  name: string;
  clusterIps?: string[];
  ports?: ServicePortMessage[];
  selector?: Record<string, string>;
  type?: string;
  externalName?: string;
  endpoints?: string[];
}

export interface SubscribeRequestMessage {
  epoch?: string;
  /** uint64: a decimal string on the wire side of proto-loader (longs: String), a number when we send it. */
  version?: string | number;
  client?: string;
}

export interface IdentityUpdateMessage {
  epoch: string;
  version: string | number;
  reset?: boolean;
  more?: boolean;
  upserts?: WorkloadMessage[];
  removed?: string[];
  services?: ServiceMessage[];
  removedServices?: string[];
}

export function identityServiceDefinition(): grpc.ServiceDefinition {
  const definition = loadProto('sidewall/identity/v1/identity.proto');
  const service = definition[IDENTITY_SERVICE] as ServiceDefinition | undefined;
  if (service === undefined) throw new Error(`proto definition has no ${IDENTITY_SERVICE}`);
  return service as unknown as grpc.ServiceDefinition;
}

export interface IdentityStreamClient extends grpc.Client {
  Subscribe(request: SubscribeRequestMessage, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<IdentityUpdateMessage>;
}

export function createIdentityStreamClient(address: string, credentials: grpc.ChannelCredentials, options: grpc.ChannelOptions = {}): IdentityStreamClient {
  const Constructor = grpc.makeGenericClientConstructor(identityServiceDefinition(), 'IdentityStream');
  return new Constructor(address, credentials, options) as unknown as IdentityStreamClient;
}

/** uint64 from proto-loader (string with longs: String) as a number; versions stay far below 2^53. */
export function versionNumber(value: string | number | undefined): number {
  if (value === undefined || value === '') return 0;
  const n = typeof value === 'number' ? value : Number(value);
  return Number.isSafeInteger(n) && n >= 0 ? n : 0;
}
