// Public surface of the flow subsystem: record types, the pipeline, exporters, and the admin-port
// flow stream handler. See schema/flow-record.schema.json for the record format.
export type {
  FlowType,
  FlowDirection,
  FlowVerdict,
  WorkloadRecord,
  EndpointRecord,
  PodRef,
  TunnelRecord,
  FlowRecordDraft,
  FlowRecord,
  SuggestedRule,
} from './types.js';
export { createFlowPipeline, defaultObserveHub } from './pipeline.js';
export type { FlowPipeline, FlowPipelineOptions, TrackedConnection } from './pipeline.js';
export { StdoutExporter } from './stdout-exporter.js';
export type { StdoutExporterOptions } from './stdout-exporter.js';
export { OtlpExporter, InvalidOtlpEndpointError } from './otlp-exporter.js';
export type { OtlpExporterOptions, OtlpExporterStats } from './otlp-exporter.js';
export { ObserveHub } from './observe-hub.js';
export { compileFlowFilter, InvalidFlowFilterError } from './flow-filter.js';
export type { FlowFilter, FlowPredicate } from './flow-filter.js';
export { FlowClock, parseRfc3339Nano } from './clock.js';
export type { FlowEntry, FlowSink } from './entry.js';
export { handleObserveStream, createObserveStreamHandler, OBSERVE_PATH, OBSERVE_SERVICE } from './observe-service.js';
export type { ObserveRequest, ObserveResponse, ObserveHandlerOptions, Http2StreamHandler } from './observe-service.js';
