{{/* Names shared by the templates. */}}
{{- define "sidewall.fullname" -}}
{{- if contains "sidewall" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-sidewall" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sidewall.webhookName" -}}
{{- printf "%s-webhook" (include "sidewall.fullname" .) -}}
{{- end -}}

{{- define "sidewall.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "sidewall.labels" -}}
app.kubernetes.io/name: sidewall
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sidewall
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "sidewall.selectorLabels" -}}
app.kubernetes.io/name: sidewall
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end -}}

{{/* The injector settings file read by `sidewall webhook --settings`. */}}
{{- define "sidewall.injectorSettings" -}}
image: {{ include "sidewall.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
nativeSidecar: {{ .Values.sidecar.nativeSidecar }}
proxyUid: {{ .Values.sidecar.proxyUid }}
proxyGid: {{ .Values.sidecar.proxyGid }}
redirectDns: {{ .Values.sidecar.redirectDns }}
iptablesBackend: {{ .Values.sidecar.iptablesBackend }}
rewriteProbes: {{ .Values.sidecar.rewriteProbes }}
excludeInboundPorts: {{ .Values.sidecar.excludeInboundPorts | toJson }}
excludeOutboundPorts: {{ .Values.sidecar.excludeOutboundPorts | toJson }}
excludeOutboundCidrs: {{ .Values.sidecar.excludeOutboundCidrs | toJson }}
proxyResources: {{ .Values.sidecar.resources | toJson }}
initResources: {{ .Values.sidecar.initResources | toJson }}
proxyNodeOptions: {{ .Values.sidecar.nodeOptions | quote }}
proxyLauncher: {{ .Values.sidecar.proxyLauncher | toJson }}
sidecarConfigMap: {{ include "sidewall.fullname" . }}-sidecar-config
clusterRulesConfigMap: {{ include "sidewall.fullname" . }}-cluster-rules
annotationGuard:
  enabled: {{ .Values.annotationGuard.enabled }}
  annotations: {{ .Values.annotationGuard.annotations | toJson }}
  allowedUsers: {{ .Values.annotationGuard.allowedUsers | toJson }}
  allowedGroups: {{ .Values.annotationGuard.allowedGroups | toJson }}
  labels: {{ .Values.annotationGuard.labels | toJson }}
  trustedCreators: {{ .Values.annotationGuard.trustedCreators | toJson }}
stepAround: {{ .Values.stepAround | toJson }}
{{- /* A capture block in the sidecar config: the proxy gets a capture volume sized from maxBytes (injector/mutate.ts captureVolumeSizeLimit). */}}
{{- $capture := .Values.sidecar.config.capture }}
{{- if kindIs "map" $capture }}
capture:
  maxBytes: {{ get $capture "maxBytes" | default "8MiB" | toJson }}
{{- end }}
{{- if .Values.controller.enabled }}
identity:
  audience: {{ .Values.controller.audience | quote }}
  expirationSeconds: {{ int .Values.controller.tokenExpirationSeconds }}
  caConfigMap: {{ include "sidewall.controllerCaName" . }}
{{- end }}
{{- end -}}

{{/* The ConfigMap (one per injected namespace) with the CA that verifies the identity controller. */}}
{{- define "sidewall.controllerCaName" -}}
{{- printf "%s-controller-ca" (include "sidewall.fullname" .) -}}
{{- end -}}

{{/* host:port of the identity stream as sidecars in other namespaces reach it (a name in the webhook certificate). */}}
{{- define "sidewall.controllerAddress" -}}
{{- printf "%s.%s.svc:%d" (include "sidewall.webhookName" .) .Release.Namespace (int .Values.controller.port) -}}
{{- end -}}

{{/* The sidecar config file (PRODUCT.md "Sidecar config"), mounted at /etc/sidewall/config/config.yaml. */}}
{{- define "sidewall.sidecarConfig" -}}
{{- $config := deepCopy .Values.sidecar.config -}}
{{- $_ := set $config "clusterRules" "/etc/sidewall/cluster/rules.yaml" -}}
{{- $_ := set $config "podInfo" "/etc/sidewall/pod" -}}
{{- if kindIs "map" .Values.sidecar.config.capture -}}
{{- /* The capture volume the injector mounts (injector/mutate.ts CAPTURE_DIR). */}}
{{- $_ := set $config "capture" (merge (dict "dir" "/var/lib/sidewall/captures") (deepCopy .Values.sidecar.config.capture)) -}}
{{- end -}}
{{- if .Values.controller.enabled -}}
{{- /* The files the injector mounts into sidewall-proxy (injector/mutate.ts IDENTITY_TOKEN_FILE, CONTROLLER_CA_FILE). */}}
{{- $_ := set $config "identity" (dict "controller" (include "sidewall.controllerAddress" .) "tokenFile" "/var/run/secrets/sidewall/token" "caFile" "/etc/sidewall/ca/ca.crt") -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}
