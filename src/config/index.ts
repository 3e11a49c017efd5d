// The sidecar config file and the policy store built from it (PRODUCT.md "Sidecar config").
export {
  ConfigError, DEFAULT_PROXY, loadConfig, parseConfig, tunnelModeFor,
  type ExportConfig, type IdentityEntry, type ProxyTunables, type SidecarConfig, type TunnelMode, type TunnelPolicy,
} from './load.js';
export { PolicyStore, MODE_ANNOTATION, RULES_ANNOTATION, type PolicyStoreEvents, type PolicyStoreOptions } from './policy-store.js';
export { DownwardApiError, parseDownwardApiMap, readPodInfo, type PodInfo } from './downward-api.js';
