// The sidecar config's schema (PRODUCT.md "Sidecar config"), as JSON Schema data: load.ts
// validates with it and only applies defaults; the chart's values.schema.json embeds it for
// `sidecar.config`. New config keys go into CONFIG_PROPERTIES (and their defaults into load.ts).

import { isIP } from 'node:net';
import { PROTOCOLS } from '../policy/rule-schema.js';
import type { FormatCheck, JsonSchema } from '../schema/validator.js';
import { SERVICES_SCHEMA } from './services.js';
import { BUILTIN_SENSOR_NAMES, customPatternError, DLP_WHERE } from '../content/dlp/index.js';

/** DLP sensor names: built-ins (pci-pan, …) and the names of `dlp.patterns`. */
export const SENSOR_NAME_PATTERN = '^[a-z0-9][a-z0-9-]{0,62}$';
const SENSOR_NAME: JsonSchema = { type: 'string', pattern: SENSOR_NAME_PATTERN, 'x-messages': { pattern: "'{value}' is not a sensor name (lower-case letters, digits and '-')" } };

/** `dlp:` (PRODUCT.md "Sidecar config"); cross-field checks (sensor names known) in load.ts. */
const DLP_SCHEMA: JsonSchema = {
  type: ['object', 'null'],
  additionalProperties: false,
  'x-messages': { type: 'must be a mapping such as {action: block, sensors: [pci-pan, us-ssn]}, not {describe}' },
  properties: {
    action: { type: 'string', enum: ['alert', 'block'] },
    sensors: { type: 'array', items: SENSOR_NAME, 'x-messages': { type: `must be a list of sensor names (${BUILTIN_SENSOR_NAMES.join(', ')}, or dlp.patterns names), not {describe}` } },
    patterns: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'pattern'],
        additionalProperties: false,
        properties: {
          name: SENSOR_NAME,
          pattern: { type: 'string', minLength: 1, format: 're2' },
          maxLength: { type: 'integer', minimum: 1, maximum: 4096, 'x-messages': { type: 'must be a whole number from 1 to 4096 (the longest match, in bytes)', minimum: 'must be a whole number from 1 to 4096 (the longest match, in bytes)', maximum: 'must be a whole number from 1 to 4096 (the longest match, in bytes)' } },
        },
        'x-messages': { type: 'must be a mapping {name, pattern}, not {describe}' },
      },
      'x-messages': { type: 'must be a list of {name, pattern}, not {describe}' },
    },
    directions: { type: 'array', items: { type: 'string', enum: ['ingress', 'egress', 'intra'] } },
    scan: { type: 'array', items: { type: 'string', enum: [...DLP_WHERE] } },
    maxBytes: {
      if: { type: 'number' },
      then: { type: 'integer', minimum: 1, 'x-messages': { type: 'must be a byte size such as 1048576 or "1MiB", not {show}', minimum: 'must be a byte size such as 1048576 or "1MiB", not {show}' } },
      else: { type: 'string', pattern: '^[0-9]+\\s*(B|KiB|MiB|GiB|KB|MB|GB)?$', 'x-messages': { type: 'must be a byte size such as 1048576 or "1MiB", not {show}', pattern: 'must be a byte size such as 1048576 or "1MiB", not {show}' } },
    },
    maxRatio: { type: 'number', minimum: 2, 'x-messages': { minimum: 'must be a number ≥ 2 (decoded/encoded size of a compressed body), not {show}' } },
    holdMs: { type: 'integer', minimum: 1, maximum: 60000, 'x-messages': { type: 'must be a whole number of milliseconds from 1 to 60000, not {show}', minimum: 'must be a whole number of milliseconds from 1 to 60000, not {show}', maximum: 'must be a whole number of milliseconds from 1 to 60000, not {show}' } },
  },
};

/** setTimeout's limit, and so of every duration and count below. */
const MAX_INT32 = 2_147_483_647;

export const CONFIG_FORMATS: Readonly<Record<string, FormatCheck>> = {
  ip: (s) => (isIP(s) === 0 ? `'${s}' is not an IP address` : null),
  // Users' DLP patterns: RE2 syntax (no backreferences or lookaround), compiled by re2js.
  re2: (s) => {
    const error = customPatternError(s);
    return error === null ? null : `is not valid RE2 syntax (${error}); RE2 has no backreferences or lookaround`;
  },
  'port-key': (s) => (/^\d{1,5}$/.test(s) && Number(s) >= 1 && Number(s) <= 65535 ? null : `'${s}' is not a port (1–65535)`),
  // host:port, or unix:/path for a controller (or node agent) on a local socket.
  'controller-address': (s) =>
    /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(s) || /^unix:\/\S+$/.test(s) ? null : `'${s}' is not host:port or unix:/path`,
};

const nonEmpty = (extra: JsonSchema = {}): JsonSchema => ({
  type: 'string',
  minLength: 1,
  ...extra,
  'x-messages': { type: 'must be a non-empty string, not {show}', minLength: "must be a non-empty string, not ''", ...(extra['x-messages'] as object | undefined) },
});

const stringMap = (what: string): JsonSchema => ({
  type: 'object',
  additionalProperties: { type: 'string' },
  'x-messages': { type: `must be a mapping of ${what}, not {describe}` },
});

const boolean: JsonSchema = { type: 'boolean' };

function wholeNumber(min: number, max: number, message: string): JsonSchema {
  return { type: 'integer', minimum: min, maximum: max, 'x-messages': { type: message, minimum: message, maximum: message } };
}

/** A byte count: a whole number, or a string with a unit (64MiB, 512KiB, 8Mi, 500KB); load.ts byteSize() reads it. */
function byteSize(min: number): JsonSchema {
  const message = `must be a size of at least ${min} bytes, as a number or with a unit (e.g. 8MiB, 512KiB), not {show}`;
  return {
    type: ['integer', 'string'],
    minimum: min,
    maximum: Number.MAX_SAFE_INTEGER,
    pattern: '^\\s*\\d+\\s*([kKmMgG][iI]?[bB]?|[bB])?\\s*$',
    'x-messages': { type: message, minimum: message, maximum: message, pattern: message },
  };
}

const TUNNEL_MODE: JsonSchema = { type: 'string', enum: ['block', 'alert', 'off'] };

/** The proxy tunables: name → schema (defaults: DEFAULT_PROXY in load.ts). */
export const PROXY_PROPERTIES: Record<string, JsonSchema> = {};
for (const key of [
  'connectTimeoutMs', 'idleTimeoutMs', 'maxConnections', 'drainTimeoutMs', 'detectTimeoutMs', 'headTimeoutMs',
  'minHeadBytesPerSecond', 'memoryLimitBytes', 'flowIntervalMs', 'outboundPort', 'inboundPort', 'adminPort', 'dnsPort',
  'socketMark', 'nfqueue', 'nfqueueMaxLen',
]) {
  if (key.endsWith('Port')) PROXY_PROPERTIES[key] = wholeNumber(1, 65535, 'must be a port (1–65535), not {show}');
  else if (key === 'nfqueue') PROXY_PROPERTIES[key] = wholeNumber(1, 65535, 'must be an NFQUEUE number (1–65535, as given to sidewall init --nfqueue), not {show}');
  else if (key === 'memoryLimitBytes') {
    PROXY_PROPERTIES[key] = wholeNumber(0, Number.MAX_SAFE_INTEGER, "must be a whole number of bytes (0: the container's memory limit), e.g. 268435456 for 256 MiB, not {show}");
  } else {
    PROXY_PROPERTIES[key] = wholeNumber(1, MAX_INT32, `must be a positive whole number${key.endsWith('Ms') ? ' of milliseconds' : ''} up to ${MAX_INT32}, not {show}`);
  }
}

/** The sidecar config's top-level keys. capture, dlp, services: add yours here. */
export const CONFIG_PROPERTIES: Record<string, JsonSchema> = {
  mode: { type: 'string', enum: ['protect', 'monitor', 'learn'] },
  defaultAction: { type: 'string', enum: ['allow', 'deny'] },
  onParseError: { type: 'string', enum: ['pass', 'reset'] },
  ports: {
    type: 'object',
    propertyNames: { type: 'string', format: 'port-key' },
    additionalProperties: {
      type: 'string',
      enum: [...PROTOCOLS],
      'x-messages': { enum: `{show} is not a known protocol (${PROTOCOLS.join(', ')})`, type: `{show} is not a known protocol (${PROTOCOLS.join(', ')})` },
    },
    'x-messages': { type: 'must be a mapping of port to protocol (e.g. "80": http), not {describe}' },
  },
  tunnels: {
    if: { type: 'object' },
    then: { type: 'object', additionalProperties: TUNNEL_MODE },
    else: { ...TUNNEL_MODE, 'x-messages': { type: 'must be block, alert, off, or a mapping such as {default: alert, ssh: block}, not {describe}' } },
  },
  rules: { type: ['array', 'null'], 'x-messages': { type: 'must be a list of rules, not {describe}' } },
  clusterRules: nonEmpty(),
  podInfo: nonEmpty(),
  identities: {
    type: ['array', 'null'],
    'x-messages': { type: 'must be a list of {ip, namespace, pod, labels, serviceAccount}, not {describe}' },
    items: {
      type: 'object',
      required: ['ip'],
      additionalProperties: false,
      'x-messages': { type: 'must be a mapping with ip and workload fields, not {describe}' },
      properties: {
        ip: { type: 'string', format: 'ip', 'x-messages': { required: "is required (the workload's IP address)", type: '{show} is not an IP address' } },
        namespace: nonEmpty(),
        pod: nonEmpty(),
        labels: stringMap('label to value'),
        serviceAccount: nonEmpty(),
      },
    },
  },
  services: SERVICES_SCHEMA,
  identity: {
    type: ['object', 'null'],
    required: ['controller'],
    additionalProperties: false,
    'x-messages': { type: 'must be a mapping with controller (host:port), tokenFile and caFile, not {describe}' },
    properties: {
      controller: nonEmpty({
        format: 'controller-address',
        'x-messages': { required: 'is required (host:port of the sidewall controller, e.g. sidewall-controller.sidewall:15012)' },
      }),
      tokenFile: nonEmpty(),
      caFile: nonEmpty(),
    },
  },
  export: {
    type: ['object', 'null'],
    additionalProperties: false,
    'x-messages': { type: 'must be a mapping with stdout and otlp, not {describe}' },
    properties: {
      stdout: boolean,
      otlp: {
        type: ['object', 'null'],
        required: ['endpoint'],
        additionalProperties: false,
        'x-messages': { type: 'must be a mapping with endpoint, not {describe}' },
        properties: {
          endpoint: nonEmpty({ 'x-messages': { required: 'is required (host:port of the OpenTelemetry Collector)' } }),
          insecure: boolean,
          headers: stringMap('header to value'),
        },
      },
    },
  },
  proxy: {
    type: ['object', 'null'],
    additionalProperties: false,
    properties: PROXY_PROPERTIES,
    'x-messages': { type: 'must be a mapping of tunables, not {describe}' },
  },
  learn: {
    type: ['object', 'null'],
    additionalProperties: false,
    'x-messages': { type: 'must be a mapping with stateFile, maxServices, maxPaths, maxSiblings, saveIntervalMs, not {describe}' },
    properties: {
      stateFile: nonEmpty(),
      maxServices: wholeNumber(1, MAX_INT32, 'must be a positive whole number, not {show}'),
      maxPaths: wholeNumber(1, MAX_INT32, 'must be a positive whole number, not {show}'),
      maxSiblings: wholeNumber(1, MAX_INT32, 'must be a positive whole number, not {show}'),
      saveIntervalMs: wholeNumber(1, MAX_INT32, 'must be a positive whole number of milliseconds, not {show}'),
    },
  },
  admin: {
    type: ['object', 'null'],
    additionalProperties: false,
    'x-messages': { type: 'must be a mapping with tokenFile, not {describe}' },
    properties: { tokenFile: nonEmpty() },
  },
  http: {
    type: ['object', 'null'],
    additionalProperties: false,
    'x-messages': { type: 'must be a mapping such as {escapedSlashes: reject}, not {describe}' },
    properties: { escapedSlashes: { type: 'string', enum: ['reject', 'decode'] } },
  },
  capture: {
    type: ['object', 'null'],
    additionalProperties: false,
    'x-messages': { type: 'must be a mapping with onAlert, maxBytes, dir, preBufferBytes, not {describe}' },
    properties: {
      onAlert: boolean,
      maxBytes: byteSize(4096),
      dir: nonEmpty(),
      preBufferBytes: byteSize(0),
    },
  },
  dlp: DLP_SCHEMA,
};

/**
 * The whole config's schema. `rules` items: the given schema (the chart passes a $ref to the
 * workload rule schema; the loader leaves rules to the policy store, which sees both tiers).
 */
export function configSchema(ruleItems: JsonSchema = {}): JsonSchema {
  const properties: Record<string, JsonSchema> = { ...CONFIG_PROPERTIES, rules: { ...CONFIG_PROPERTIES.rules, items: ruleItems } };
  return {
    type: ['object', 'null'],
    description: 'The sidecar config (PRODUCT.md "Sidecar config"); every key optional.',
    additionalProperties: false,
    properties,
    'x-messages': { type: 'the config must be a mapping of settings, not {describe}' },
  };
}
