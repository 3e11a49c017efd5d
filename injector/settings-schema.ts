// The injector settings' schema (injector.yaml in the chart's ConfigMap; settings.ts applies the
// defaults). The chart's values.schema.json shares its definitions (port, quantity, resources).

import type { FormatCheck, JsonSchema } from '../src/schema/validator.js';
import { isCidr } from './annotations.js';
import { CONFIG_PROPERTIES } from '../src/config/config-schema.js';

/** The V8 heap flags proxyNodeOptions may carry (NODE_OPTIONS could otherwise load any code). */
export const NODE_HEAP_FLAG = /^--(max-semi-space-size|min-semi-space-size|max-old-space-size)=\d{1,6}$/;

export const SETTINGS_FORMATS: Readonly<Record<string, FormatCheck>> = {
  'node-heap-flags': (value) => {
    const bad = value.trim().split(/\s+/).filter((flag) => flag !== '' && !NODE_HEAP_FLAG.test(flag));
    return bad.length === 0
      ? null
      : `${bad.map((flag) => JSON.stringify(flag)).join(', ')} not allowed; only --max-semi-space-size=MiB, --min-semi-space-size=MiB and --max-old-space-size=MiB`;
  },
  'exclude-cidr': (value) => (isCidr(value) ? null : `'${value}' is not a CIDR (e.g. 10.0.0.0/8 or fd00::/8)`),
};

/** Kubernetes refuses projected tokens shorter than 10 minutes (TokenRequest minimum). */
export const MIN_TOKEN_SECONDS = 600;
export const MAX_TOKEN_SECONDS = 2 ** 32 - 1;

/** Shared pieces (also under the chart schema's definitions). */
export const PORT: JsonSchema = { type: 'integer', minimum: 1, maximum: 65535, 'x-messages': { type: 'must be a port (1–65535), not {show}', minimum: 'must be a port (1–65535), not {show}', maximum: 'must be a port (1–65535), not {show}' } };
export const QUANTITY: JsonSchema = {
  type: ['string', 'number'],
  pattern: '^[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$',
  'x-messages': { pattern: "{show} is not a Kubernetes quantity (e.g. 50m, 64Mi, 1)", type: 'must be a quantity such as 64Mi, not {describe}' },
};
export const RESOURCES: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  'x-messages': { type: 'must be a mapping with requests and limits, not {describe}' },
  properties: {
    requests: { type: ['object', 'null'], additionalProperties: QUANTITY },
    limits: { type: ['object', 'null'], additionalProperties: QUANTITY },
  },
};
export const NAMESPACE_NAME: JsonSchema = {
  type: 'string',
  pattern: '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$',
  'x-messages': { pattern: "'{value}' is not a namespace name (lower-case letters, digits and '-', at most 63)" },
};
export const CONFIGMAP_NAME: JsonSchema = {
  type: 'string',
  minLength: 1,
  'x-messages': { type: 'must be a ConfigMap name, not {describe}', minLength: 'must be a ConfigMap name, not empty' },
};

const strings: JsonSchema = { type: 'array', items: { type: 'string' } };
const ports: JsonSchema = { type: 'array', items: PORT };

/** injector.yaml, key by key (defaults: defaultInjectorSettings()). */
export const SETTINGS_PROPERTIES: Record<string, JsonSchema> = {
  image: { type: 'string', minLength: 1, 'x-messages': { minLength: 'must be an image reference, not empty' } },
  imagePullPolicy: { type: 'string', enum: ['Always', 'IfNotPresent', 'Never'] },
  nativeSidecar: { type: 'boolean' },
  proxyUid: { type: 'integer', minimum: 1, 'x-messages': { minimum: 'must be a non-zero uid, not {show}' } },
  proxyGid: { type: 'integer', minimum: 1, 'x-messages': { minimum: 'must be a non-zero gid, not {show}' } },
  inboundPort: PORT,
  outboundPort: PORT,
  adminPort: PORT,
  redirectDns: { type: 'boolean' },
  iptablesBackend: { type: 'string', enum: ['auto', 'nft', 'legacy'] },
  excludeInboundPorts: ports,
  excludeOutboundPorts: ports,
  excludeOutboundCidrs: { type: 'array', items: { type: 'string', format: 'exclude-cidr' } },
  proxyResources: RESOURCES,
  initResources: RESOURCES,
  proxyNodeOptions: { type: 'string', format: 'node-heap-flags', 'x-messages': { type: 'expected a string of node flags, e.g. "--max-semi-space-size=1", not {describe}' } },
  sidecarConfigMap: CONFIGMAP_NAME,
  clusterRulesConfigMap: CONFIGMAP_NAME,
  rewriteProbes: { type: 'boolean' },
  annotationGuard: {
    type: 'object',
    additionalProperties: false,
    properties: {
      enabled: { type: 'boolean' },
      annotations: strings,
      allowedUsers: strings,
      allowedGroups: strings,
      labels: strings,
      trustedCreators: strings,
    },
  },
  stepAround: {
    type: 'object',
    additionalProperties: false,
    properties: {
      enabled: { type: 'boolean' },
      rootContainers: {
        type: 'string',
        enum: ['drop', 'refuse'],
        'x-messages': { enum: 'must be drop (add capabilities.drop [SETUID, SETGID]) or refuse (deny the pod), not {show}' },
      },
      dropNetRaw: { type: 'boolean' },
      exemptNamespaces: { type: 'array', items: NAMESPACE_NAME },
    },
  },
  proxyLauncher: {
    type: 'array',
    items: { type: 'string', minLength: 1 },
    'x-messages': { type: "must be a list of non-empty strings (the command prepended to sidewall-proxy's), or [] for none" },
  },
  capture: {
    // The sidecar config's capture.maxBytes (the chart copies it): the capture volume's size.
    if: { type: 'object' },
    then: {
      type: 'object',
      additionalProperties: false,
      properties: { maxBytes: (CONFIG_PROPERTIES.capture!.properties as Record<string, JsonSchema>).maxBytes! },
    },
    else: { enum: [null, false], 'x-messages': { enum: 'must be a mapping with maxBytes (the capture volume is sized from it), or null: no capture volume, not {describe}' } },
  },
  identity: {
    // null or false: explicitly off (the chart with controller.enabled=false writes nothing).
    if: { type: 'object' },
    then: {
      type: 'object',
      additionalProperties: false,
      properties: {
        audience: { type: 'string', minLength: 1, 'x-messages': { minLength: 'must be a non-empty string, the audience the controller checks', type: 'must be a non-empty string, the audience the controller checks' } },
        expirationSeconds: {
          type: 'integer',
          minimum: MIN_TOKEN_SECONDS,
          maximum: MAX_TOKEN_SECONDS,
          'x-messages': {
            type: `must be whole seconds, at least ${MIN_TOKEN_SECONDS} (the Kubernetes minimum), not {show}`,
            minimum: `must be whole seconds, at least ${MIN_TOKEN_SECONDS} (the Kubernetes minimum), not {show}`,
            maximum: `must be whole seconds, at least ${MIN_TOKEN_SECONDS} (the Kubernetes minimum) and at most ${MAX_TOKEN_SECONDS}, not {show}`,
          },
        },
        caConfigMap: { type: ['string', 'null'], minLength: 1, 'x-messages': { type: 'must be a ConfigMap name, not {describe}', minLength: 'must be a ConfigMap name, not empty' } },
      },
    },
    else: { enum: [null, false], 'x-messages': { enum: 'must be a mapping with audience, expirationSeconds and caConfigMap (or null: off), not {describe}' } },
  },
};

export function settingsSchema(): JsonSchema {
  return {
    type: ['object', 'null'],
    description: 'The injector settings (injector.yaml); every key optional.',
    additionalProperties: false,
    properties: SETTINGS_PROPERTIES,
    'x-messages': { type: 'expected a YAML map at the top level, not {describe}' },
  };
}
