// THE flow-record schema (PRODUCT.md "Flow records"; src/flows/types.ts is its TypeScript form):
// the record's own fields here, the `l7` fields of each protocol from the protocol registry
// (`recordFields` of src/protocols/<name>/index.ts), so a protocol's folder says what its records
// carry and nothing else has to. `npm run build` writes it to schema/flow-record.schema.json (the
// published form, JSON Schema 2020-12; scripts/write-validators.mjs), and
// test/unit/schema/generated.test.ts fails while that file is stale. Nothing validates records at
// run time (the proxy writes them); the tests and e2e suites validate every record they see.
import { PROTOCOL_PLUGINS } from '../protocols/registry.js';
import type { JsonSchema } from './validator.js';

/** `l7` fields any connection record may carry, whatever its protocol (src/enforcement/connection-filter.ts). */
export const CONNECTION_L7_FIELDS: Readonly<Record<string, JsonSchema>> = {
  detection: { enum: ['unknown', 'timeout', 'client-fin'], description: 'Why nothing was detected: the connection was denied where a deny rule with protocol or L7 matchers could apply.' },
  parseError: { type: 'string', description: "The parser's error code (ERR_MALFORMED, ...): reset under protect, recorded in monitor/learn." },
};

/** Record protocols that are not a registered protocol (the non-TCP guard's, and undetected TCP). */
const CORE_L7: Readonly<Record<string, Readonly<Record<string, JsonSchema>>>> = {
  tcp: {},
  udp: {},
  icmp: {
    icmp: {
      type: 'object',
      description: 'ICMP / ICMPv6 type and code of the first packet.',
      required: ['type', 'code'],
      additionalProperties: false,
      properties: { type: { type: 'integer', minimum: 0, maximum: 255 }, code: { type: 'integer', minimum: 0, maximum: 255 } },
    },
  },
};

/** Each record protocol's l7 fields: the core ones, then every registered protocol's (for its name and the rule protocols it carries). */
export function recordL7Fields(): Record<string, Record<string, JsonSchema>> {
  const out: Record<string, Record<string, JsonSchema>> = {};
  for (const [protocol, fields] of Object.entries(CORE_L7)) out[protocol] = { ...CONNECTION_L7_FIELDS, ...fields };
  for (const plugin of PROTOCOL_PLUGINS) {
    for (const protocol of [plugin.name, ...(plugin.ruleProtocols ?? [])]) out[protocol] = { ...CONNECTION_L7_FIELDS, ...(plugin.recordFields ?? {}) };
  }
  return out;
}

function l7Property(): JsonSchema {
  return {
    description: "The protocol's fields: for each record protocol, $defs/l7-PROTOCOL lists them (each protocol's recordFields, src/protocols/<name>/index.ts); another protocol's (ip-N) may carry any.",
    type: 'object',
  };
}

/** The flow-record schema with the registered protocols' l7 fields. */
export function flowRecordSchema(): JsonSchema {
  const fields = recordL7Fields();
  const schema: Record<string, unknown> = FLOW_RECORD_BASE();
  const defs = schema.$defs as Record<string, JsonSchema>;
  const allOf: JsonSchema[] = [];
  for (const [protocol, properties] of Object.entries(fields)) {
    defs[`l7-${protocol}`] = { type: 'object', additionalProperties: false, properties };
    allOf.push({ if: { required: ['protocol'], properties: { protocol: { const: protocol } } }, then: { properties: { l7: { $ref: `#/$defs/l7-${protocol}` } } } });
  }
  schema.allOf = allOf;
  return schema;
}

// The record's own fields (everything but each protocol's l7 fields).
const FLOW_RECORD_BASE = (): Record<string, unknown> => ({
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "$id": "https://sidewall.io/schema/flow-record.schema.json",
  "title": "sidewall flow record",
  "description": "One flow record, as written one per line to stdout, sent as the body of an OTLP LogRecord, and served by the admin flow stream. Matches src/flows/types.ts.",
  "type": "object",
  "required": [
    "time",
    "seq",
    "type",
    "flowId",
    "direction",
    "src",
    "dst",
    "protocol",
    "verdict",
    "ruleId",
    "policy",
    "pod"
  ],
  "additionalProperties": false,
  "properties": {
    "time": {
      "description": "RFC 3339 in UTC with nanoseconds.",
      "type": "string",
      "pattern": "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{9}Z$",
      "format": "date-time"
    },
    "seq": {
      "description": "Per sidecar, strictly increasing from 1. A gap of n means n records were lost (and counted in sidewall_flow_export_dropped_total).",
      "type": "integer",
      "minimum": 1
    },
    "type": {
      "enum": [
        "connection",
        "request",
        "alert"
      ]
    },
    "flowId": {
      "type": "string",
      "minLength": 1
    },
    "direction": {
      "enum": [
        "ingress",
        "egress",
        "intra"
      ]
    },
    "src": {
      "$ref": "#/$defs/endpoint"
    },
    "dst": {
      "$ref": "#/$defs/endpoint"
    },
    "protocol": {
      "type": "string",
      "minLength": 1
    },
    "l7": l7Property(),
    "verdict": {
      "enum": [
        "allowed",
        "denied",
        "would-deny"
      ]
    },
    "ruleId": {
      "description": "The rule that decided; null for the default action.",
      "type": [
        "string",
        "null"
      ]
    },
    "policy": {
      "description": "Short hash of the rule set in force; null before rules are loaded.",
      "type": [
        "string",
        "null"
      ]
    },
    "tunnel": {
      "type": "object",
      "required": [
        "kind",
        "evidence",
        "confidence"
      ],
      "additionalProperties": false,
      "properties": {
        "kind": {
          "type": "string",
          "minLength": 1
        },
        "evidence": {
          "description": "What gave it away: the bytes (escaped, short) or the fields and numbers.",
          "type": "string"
        },
        "confidence": {
          "type": "number",
          "minimum": 0,
          "maximum": 1
        },
        "expected": {
          "type": "string"
        },
        "detected": {
          "type": "string"
        },
        "blocked": {
          "type": "boolean"
        }
      }
    },
    "dlp": {
      "description": "A DLP hit (alert records): the sensor, where, the byte offset and a masked sample, never the value.",
      "type": "object",
      "required": [
        "sensor",
        "where",
        "offset",
        "sample",
        "blocked"
      ],
      "additionalProperties": false,
      "properties": {
        "sensor": {
          "type": "string",
          "minLength": 1
        },
        "where": {
          "enum": [
            "request-body",
            "response-body",
            "header",
            "query"
          ]
        },
        "offset": {
          "type": "integer",
          "minimum": 0
        },
        "sample": {
          "description": "The match masked (e.g. 4111 **** **** 1111), or why a body could not be decoded (sensor undecodable).",
          "type": "string"
        },
        "field": {
          "description": "The header's name, for header hits.",
          "type": "string"
        },
        "blocked": {
          "type": "boolean"
        }
      }
    },
    "bytes": {
      "description": "sent: from src to dst; received: from dst to src. Cumulative for the connection.",
      "type": "object",
      "required": [
        "sent",
        "received"
      ],
      "additionalProperties": false,
      "properties": {
        "sent": {
          "type": "integer",
          "minimum": 0
        },
        "received": {
          "type": "integer",
          "minimum": 0
        }
      }
    },
    "durationMs": {
      "type": "number",
      "minimum": 0
    },
    "reason": {
      "description": "Close reason of a connection (fin, reset, idle-timeout, connect-failed, connect-timeout, limit, loop, drain, head-timeout: bytes held for a verdict too long or arriving too slowly, overload: refused or shed to stay within the memory limit, or a parser error code), or why an alert was raised. A non-TCP flow's record (protocol udp, icmp or ip-N) is written when its first packet is decided: first-packet (allowed or would-deny) or denied.",
      "type": "string"
    },
    "uid": {
      "description": "Non-TCP flows leaving the pod: the uid owning the sending socket, as the kernel reported it with the queued packet.",
      "type": "integer",
      "minimum": 0
    },
    "capture": {
      "description": "Id of the packet capture (pcapng) holding this connection: on an alert, the capture capture.onAlert started for it (GET /captures/ID on the admin port, `sidewall capture --fetch ID`); on a connection record, the first capture it is in.",
      "type": "string",
      "pattern": "^[A-Za-z0-9_-]{1,64}$"
    },
    "captureGap": {
      "description": "With capture: the bytes of this connection that capture does not hold, sent after its pre-buffer (capture.preBufferBytes) filled and before the capture began. The capture shows the gap too: its sequence numbers jump by these counts and the first frame after the gap carries a comment. Absent: the capture holds every byte.",
      "type": "object",
      "required": ["fromClient", "toClient"],
      "additionalProperties": false,
      "properties": {
        "fromClient": { "type": "integer", "minimum": 0 },
        "toClient": { "type": "integer", "minimum": 0 }
      }
    },
    "identityStale": {
      "description": "The workload identities in src/dst may be out of date (the identity controller was unreachable).",
      "type": "boolean"
    },
    "interim": {
      "description": "True on the periodic records of a connection still open.",
      "type": "boolean"
    },
    "suggestion": {
      "description": "On a drift alert (new behaviour in protect mode): the workload rule that would allow what was denied, as an object and as YAML ready to append to the sidewall.io/rules annotation.",
      "type": "object",
      "required": [
        "rule",
        "yaml"
      ],
      "additionalProperties": false,
      "properties": {
        "rule": {
          "type": "object",
          "required": [
            "id",
            "action"
          ],
          "properties": {
            "id": {
              "type": "string"
            },
            "action": {
              "enum": [
                "allow",
                "deny"
              ]
            }
          }
        },
        "yaml": {
          "type": "string"
        }
      }
    },
    "pod": {
      "description": "The pod the sidecar protects.",
      "type": "object",
      "required": [
        "namespace",
        "name"
      ],
      "additionalProperties": false,
      "properties": {
        "namespace": {
          "type": "string"
        },
        "name": {
          "type": "string"
        },
        "ip": {
          "type": "string"
        },
        "labels": {
          "$ref": "#/$defs/labels"
        },
        "serviceAccount": {
          "type": "string"
        }
      }
    }
  },
  "$defs": {
    "labels": {
      "type": "object",
      "additionalProperties": {
        "type": "string"
      }
    },
    "endpoint": {
      "type": "object",
      "required": [
        "ip",
        "port"
      ],
      "additionalProperties": false,
      "properties": {
        "ip": {
          "type": "string",
          "anyOf": [
            {
              "format": "ipv4"
            },
            {
              "format": "ipv6"
            }
          ]
        },
        "port": {
          "type": "integer",
          "minimum": 0,
          "maximum": 65535
        },
        "service": {
          "description": "The Kubernetes Service whose cluster IP this address is (the destination of an egress or intra flow); workload is then what all its ready endpoints have in common, with pod only when there is exactly one.",
          "type": "object",
          "required": [
            "namespace",
            "name"
          ],
          "additionalProperties": false,
          "properties": {
            "namespace": {
              "type": "string"
            },
            "name": {
              "type": "string"
            }
          }
        },
        "workload": {
          "type": "object",
          "additionalProperties": false,
          "properties": {
            "namespace": {
              "type": "string"
            },
            "pod": {
              "type": "string"
            },
            "labels": {
              "$ref": "#/$defs/labels"
            },
            "serviceAccount": {
              "type": "string"
            }
          }
        }
      }
    }
  }
});
