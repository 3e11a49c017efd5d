// The chart's values schema (charts/sidewall/values.schema.json is GENERATED from this: `npm run
// build && npm run schema:values`; test/injector/values-schema.test.ts fails while it is stale).
// Where the values carry the sidecar config, the rules and the injector settings, the schema
// references the same schemas the sidecar, `policy check` and the webhook validate with, under
// `definitions` (sidecarConfig, workloadRule, clusterRule, port, quantity, resources).

import { CONFIG_FORMATS, configSchema } from '../../src/config/config-schema.js';
import { RULE_DEFINITIONS, RULE_FORMATS, ruleSchema } from '../../src/policy/rule-schema.js';
import type { FormatCheck, JsonSchema } from '../../src/schema/validator.js';
import { PORT, QUANTITY, RESOURCES, SETTINGS_FORMATS, SETTINGS_PROPERTIES } from '../settings-schema.js';

/** Every format the chart schema names (Helm ignores formats it does not know; ajv checks them). */
export const CHART_FORMATS: Readonly<Record<string, FormatCheck>> = { ...RULE_FORMATS, ...CONFIG_FORMATS, ...SETTINGS_FORMATS };

/** What is specific to the chart (webhook Deployment, TLS, controller, namespaces, RBAC). */
function chartOnly(): JsonSchema {
  return {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "sidewall chart values",
    "type": "object",
    "additionalProperties": false,
    "definitions": {
      "cidr": {
        "type": "string",
        "anyOf": [
          {
            "pattern": "^([0-9]{1,3}\\.){3}[0-9]{1,3}(/([0-9]|[12][0-9]|3[0-2]))?$"
          },
          {
            "pattern": "^[0-9a-fA-F:]*:[0-9a-fA-F:.]*(/([0-9]|[1-9][0-9]|1[01][0-9]|12[0-8]))?$"
          }
        ]
      },
      "labelSelector": {
        "type": "object",
        "additionalProperties": false,
        "properties": {
          "matchLabels": {
            "type": "object",
            "additionalProperties": {
              "type": "string"
            }
          },
          "matchExpressions": {
            "type": "array",
            "items": {
              "type": "object",
              "required": [
                "key",
                "operator"
              ],
              "additionalProperties": false,
              "properties": {
                "key": {
                  "type": "string"
                },
                "operator": {
                  "enum": [
                    "In",
                    "NotIn",
                    "Exists",
                    "DoesNotExist"
                  ]
                },
                "values": {
                  "type": "array",
                  "items": {
                    "type": "string"
                  }
                }
              }
            }
          }
        }
      },
      "failurePolicy": {
        "enum": [
          "Fail",
          "Ignore"
        ]
      },
      "timeoutSeconds": {
        "type": "integer",
        "minimum": 1,
        "maximum": 30
      }
    },
    "allOf": [
      {
        "description": "With controller.enabled the chart writes sidecar.config.identity itself.",
        "if": {
          "properties": {
            "controller": {
              "properties": {
                "enabled": {
                  "const": true
                }
              }
            }
          }
        },
        "then": {
          "properties": {
            "sidecar": {
              "properties": {
                "config": {
                  "not": {
                    "required": [
                      "identity"
                    ]
                  }
                }
              }
            }
          }
        }
      },
      {
        "description": "With cert-manager the chart cannot read the CA at install time: the sidecars' copy comes from controller.caBundle.",
        "if": {
          "required": [
            "controller",
            "tls"
          ],
          "properties": {
            "controller": {
              "properties": {
                "enabled": {
                  "const": true
                }
              }
            },
            "tls": {
              "required": [
                "certManager"
              ],
              "properties": {
                "certManager": {
                  "required": [
                    "enabled"
                  ],
                  "properties": {
                    "enabled": {
                      "const": true
                    }
                  }
                }
              }
            }
          }
        },
        "then": {
          "properties": {
            "controller": {
              "required": [
                "caBundle"
              ],
              "properties": {
                "caBundle": {
                  "minLength": 1
                }
              }
            }
          }
        }
      }
    ],
    "required": [
      "image",
      "webhook",
      "tls",
      "controller",
      "sidecar",
      "clusterRules",
      "injection",
      "annotationGuard",
      "rbac"
    ],
    "properties": {
      "global": {
        "type": "object"
      },
      "image": {
        "type": "object",
        "additionalProperties": false,
        "required": [
          "repository",
          "pullPolicy"
        ],
        "properties": {
          "repository": {
            "type": "string",
            "minLength": 1
          },
          "tag": {
            "type": "string"
          },
          "pullPolicy": {
            "enum": [
              "Always",
              "IfNotPresent",
              "Never"
            ]
          }
        }
      },
      "imagePullSecrets": {
        "type": "array",
        "items": {
          "type": "object",
          "required": [
            "name"
          ],
          "properties": {
            "name": {
              "type": "string"
            }
          }
        }
      },
      "webhook": {
        "type": "object",
        "additionalProperties": false,
        "required": [
          "replicas",
          "port",
          "failurePolicy",
          "timeoutSeconds",
          "reinvocationPolicy",
          "namespaceSelector",
          "objectSelector",
          "validation",
          "podAntiAffinity",
          "podDisruptionBudget"
        ],
        "properties": {
          "replicas": {
            "type": "integer",
            "minimum": 1
          },
          "port": {
            "$ref": "#/definitions/port"
          },
          "logLevel": {
            "enum": [
              "trace",
              "debug",
              "info",
              "warn",
              "error",
              "fatal"
            ]
          },
          "failurePolicy": {
            "$ref": "#/definitions/failurePolicy"
          },
          "timeoutSeconds": {
            "$ref": "#/definitions/timeoutSeconds"
          },
          "reinvocationPolicy": {
            "enum": [
              "Never",
              "IfNeeded"
            ]
          },
          "namespaceSelector": {
            "$ref": "#/definitions/labelSelector"
          },
          "objectSelector": {
            "$ref": "#/definitions/labelSelector"
          },
          "validation": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
              "failurePolicy": {
                "$ref": "#/definitions/failurePolicy"
              },
              "timeoutSeconds": {
                "$ref": "#/definitions/timeoutSeconds"
              }
            }
          },
          "resources": {
            "$ref": "#/definitions/resources"
          },
          "podAntiAffinity": {
            "enum": [
              "preferred",
              "required"
            ]
          },
          "podDisruptionBudget": {
            "type": "object",
            "additionalProperties": false,
            "required": [
              "minAvailable"
            ],
            "properties": {
              "minAvailable": {
                "type": [
                  "integer",
                  "string"
                ]
              }
            }
          },
          "nodeSelector": {
            "type": "object",
            "additionalProperties": {
              "type": "string"
            }
          },
          "tolerations": {
            "type": "array",
            "items": {
              "type": "object"
            }
          },
          "priorityClassName": {
            "type": "string"
          }
        }
      },
      "tls": {
        "type": "object",
        "additionalProperties": false,
        "properties": {
          "caValidityDays": {
            "type": "integer",
            "minimum": 1
          },
          "certValidityDays": {
            "type": "integer",
            "minimum": 1
          },
          "certManager": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
              "enabled": {
                "type": "boolean"
              },
              "issuerRef": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                  "name": {
                    "type": "string"
                  },
                  "kind": {
                    "enum": [
                      "Issuer",
                      "ClusterIssuer"
                    ]
                  },
                  "group": {
                    "type": "string"
                  }
                }
              },
              "duration": {
                "type": "string",
                "pattern": "^[0-9]+(h|m|s)$"
              },
              "renewBefore": {
                "type": "string",
                "pattern": "^[0-9]+(h|m|s)$"
              }
            }
          }
        }
      },
      "controller": {
        "type": "object",
        "additionalProperties": false,
        "required": [
          "enabled",
          "port",
          "healthPort",
          "audience",
          "tokenExpirationSeconds"
        ],
        "properties": {
          "enabled": {
            "type": "boolean"
          },
          "port": {
            "$ref": "#/definitions/port"
          },
          "healthPort": {
            "$ref": "#/definitions/port"
          },
          "logLevel": {
            "enum": [
              "trace",
              "debug",
              "info",
              "warn",
              "error",
              "fatal"
            ]
          },
          "audience": {
            "type": "string",
            "minLength": 1
          },
          "tokenExpirationSeconds": {
            "type": "integer",
            "minimum": 600,
            "description": "Kubernetes refuses projected tokens shorter than 600 s."
          },
          "caBundle": {
            "type": "string",
            "description": "PEM CA bundle for the sidecars; required with tls.certManager.enabled.",
            "anyOf": [
              {
                "maxLength": 0
              },
              {
                "pattern": "-----BEGIN CERTIFICATE-----"
              }
            ]
          },
          "resources": {
            "$ref": "#/definitions/resources"
          }
        }
      },
      "sidecar": {
        "type": "object",
        "additionalProperties": false,
        "required": [
          "nativeSidecar",
          "proxyUid",
          "proxyGid",
          "config"
        ],
        "properties": {
          "excludeInboundPorts": {
            "type": "array",
            "items": {
              "$ref": "#/definitions/port"
            },
            "uniqueItems": true
          },
          "excludeOutboundPorts": {
            "type": "array",
            "items": {
              "$ref": "#/definitions/port"
            },
            "uniqueItems": true
          },
          "excludeOutboundCidrs": {
            "type": "array",
            "items": {
              "$ref": "#/definitions/cidr"
            },
            "uniqueItems": true
          }
        }
      },
      "injection": {
        "type": "object",
        "additionalProperties": false,
        "required": [
          "namespaces"
        ],
        "properties": {
          "namespaces": {
            "type": "array",
            "uniqueItems": true,
            "items": {
              "type": "string",
              "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
              "maxLength": 63
            }
          }
        }
      },
      "rbac": {
        "type": "object",
        "additionalProperties": false,
        "properties": {
          "policyAdminGroup": {
            "type": "string",
            "minLength": 1
          }
        }
      }
    }
  };
}

type Properties = Record<string, JsonSchema>;

function withoutDefinitions(schema: JsonSchema): JsonSchema {
  const { definitions: _hoisted, ...rest } = schema;
  return rest;
}

export function chartValuesSchema(): JsonSchema {
  const schema = chartOnly();
  const settings = SETTINGS_PROPERTIES;
  schema.definitions = {
    port: PORT,
    quantity: QUANTITY,
    resources: RESOURCES,
    ...(schema.definitions as Properties),
    // The rules' shared parts ('#/definitions/rulePeer', ...) resolve against this document's root.
    ...RULE_DEFINITIONS,
    workloadRule: withoutDefinitions(ruleSchema('workload')),
    clusterRule: withoutDefinitions(ruleSchema('cluster')),
    sidecarConfig: configSchema({ $ref: '#/definitions/workloadRule' }),
  };
  const properties = schema.properties as Properties;
  const sidecar = properties.sidecar!.properties as Properties;
  Object.assign(sidecar, {
    nativeSidecar: settings.nativeSidecar,
    proxyUid: settings.proxyUid,
    proxyGid: settings.proxyGid,
    redirectDns: settings.redirectDns,
    iptablesBackend: settings.iptablesBackend,
    rewriteProbes: settings.rewriteProbes,
    resources: { $ref: '#/definitions/resources' },
    initResources: { $ref: '#/definitions/resources' },
    proxyLauncher: { ...settings.proxyLauncher, description: 'Prepended to sidewall-proxy\'s command: gives the proxy CAP_NET_ADMIN as uid 1337 (README "Security"); [] runs sidewall directly.' },
    nodeOptions: {
      ...settings.proxyNodeOptions,
      // Helm does not know the format: the same rule as a pattern (RE2: no lookahead, Go's regexp).
      pattern: '^\\s*(--(max-semi-space-size|min-semi-space-size|max-old-space-size)=[0-9]{1,6}(\\s+|$))*$',
      'x-messages': { pattern: 'may only hold --max-semi-space-size=MiB, --min-semi-space-size=MiB and --max-old-space-size=MiB, not {show}' },
      description: 'NODE_OPTIONS of sidewall-proxy: V8 heap sizes only.',
    },
    config: {
      description: 'The sidecar config (PRODUCT.md "Sidecar config"); clusterRules and podInfo are set by the chart.',
      allOf: [
        { $ref: '#/definitions/sidecarConfig' },
        {
          not: { anyOf: [{ required: ['clusterRules'] }, { required: ['podInfo'] }] },
          'x-messages': { not: 'must not set clusterRules or podInfo: the chart points them at the mounted files' },
        },
      ],
    },
  });
  properties.clusterRules = {
    type: 'array',
    description: 'The cluster tier of rules (PRODUCT.md "Rules"), the same schema as `sidewall policy check --tier cluster`.',
    items: { $ref: '#/definitions/clusterRule' },
  };
  properties.annotationGuard = { ...settings.annotationGuard, required: ['enabled', 'annotations', 'allowedUsers', 'allowedGroups'] };
  properties.stepAround = { ...settings.stepAround, description: 'Pods that could step around the sidecar (README "Security").' };
  return schema;
}

/** The text of charts/sidewall/values.schema.json. */
export function chartValuesSchemaText(): string {
  return JSON.stringify(chartValuesSchema(), null, 2) + '\n';
}
