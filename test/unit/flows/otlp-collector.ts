// A test OpenTelemetry Collector: an OTLP/gRPC logs receiver built with @grpc/grpc-js from the
// official protos in proto/opentelemetry. It can be up, down, slow (answers after a delay, so
// the exporter's deadline passes although the batch arrived) and restarted on the same port.
import * as grpc from '@grpc/grpc-js';
import { loadProto } from '../../../src/flows/proto-files.js';

interface ExportedKeyValue { key: string; value?: { stringValue?: string; intValue?: string } }
interface ExportedLogRecord { timeUnixNano?: string; severityText?: string; body?: { stringValue?: string }; attributes?: ExportedKeyValue[] }
interface ExportRequest {
  resourceLogs?: { resource?: { attributes?: ExportedKeyValue[] }; scopeLogs?: { scope?: { name?: string }; logRecords?: ExportedLogRecord[] }[] }[];
}

export interface ReceivedLog {
  seq: number;
  body: string;
  timeUnixNano: string;
  resource: Record<string, string>;
  attributes: Record<string, string>;
}

export class TestCollector {
  readonly received: ReceivedLog[] = [];
  /** Milliseconds to wait before answering an Export. */
  delayMs = 0;
  exports = 0;
  private server: grpc.Server | null = null;
  private port = 0;

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const definition = loadProto('opentelemetry/proto/collector/logs/v1/logs_service.proto');
    const service = definition['opentelemetry.proto.collector.logs.v1.LogsService'] as grpc.ServiceDefinition;
    const server = new grpc.Server();
    server.addService(service, {
      Export: (call: grpc.ServerUnaryCall<ExportRequest, object>, callback: grpc.sendUnaryData<object>) => {
        this.exports++;
        this.record(call.request);
        if (this.delayMs > 0) setTimeout(() => callback(null, {}), this.delayMs);
        else callback(null, {});
      },
    });
    this.port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`127.0.0.1:${this.port}`, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port)));
    });
    this.server = server;
  }

  stop(): void {
    this.server?.forceShutdown();
    this.server = null;
  }

  private record(request: ExportRequest): void {
    for (const resourceLogs of request.resourceLogs ?? []) {
      const resource = flatten(resourceLogs.resource?.attributes);
      for (const scopeLogs of resourceLogs.scopeLogs ?? []) {
        for (const log of scopeLogs.logRecords ?? []) {
          const attributes = flatten(log.attributes);
          this.received.push({
            seq: Number(attributes['sidewall.flow.seq']),
            body: log.body?.stringValue ?? '',
            timeUnixNano: log.timeUnixNano ?? '',
            resource,
            attributes,
          });
        }
      }
    }
  }
}

function flatten(attributes: ExportedKeyValue[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const attribute of attributes ?? []) out[attribute.key] = attribute.value?.stringValue ?? attribute.value?.intValue ?? '';
  return out;
}
