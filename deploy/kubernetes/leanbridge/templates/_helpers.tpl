{{/* Names, labels and the shutdown bound shared by the templates. */}}

{{- define "leanbridge.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "leanbridge.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "leanbridge.labels" -}}
{{ include "leanbridge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "leanbridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "leanbridge.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The bridge's exit bound in whole seconds, from the settings this chart
gives it: shutdown.timeout.ms (the drain) + api.timeout.ms +
api.timeout.hold.ms (the wait for requests still at the API) + the
bridge's fixed 10 s for the dead-letter flush, the final commit and leaving
the group, rounded up. `leanbridge --check-config` prints the same bound
(the chart's test compares them).
*/}}
{{- define "leanbridge.exitBoundSeconds" -}}
{{- $ms := add (int .Values.shutdownTimeoutMs) (int .Values.api.timeoutMs) (int .Values.api.timeoutHoldMs) 10000 -}}
{{- div (add $ms 999) 1000 -}}
{{- end -}}

{{/* terminationGracePeriodSeconds: above the exit bound, or rendering fails. */}}
{{- define "leanbridge.graceSeconds" -}}
{{- $bound := int (include "leanbridge.exitBoundSeconds" .) -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds -}}
{{- add $bound (int .Values.graceMarginSeconds) -}}
{{- else -}}
{{- $grace := int .Values.terminationGracePeriodSeconds -}}
{{- if le $grace $bound -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed the bridge's exit bound (%d s = shutdownTimeoutMs + api.timeoutMs + api.timeoutHoldMs + 10 s), or the pod is killed in the middle of its drain" $grace $bound) -}}
{{- end -}}
{{- $grace -}}
{{- end -}}
{{- end -}}

{{/* security.protocol from the TLS and SASL settings. */}}
{{- define "leanbridge.securityProtocol" -}}
{{- $tls := or .Values.kafka.tls.caSecret .Values.kafka.mtls.userSecret -}}
{{- if .Values.kafka.sasl.passwordSecret -}}
{{- ternary "SASL_SSL" "SASL_PLAINTEXT" (not (empty $tls)) -}}
{{- else -}}
{{- ternary "SSL" "PLAINTEXT" (not (empty $tls)) -}}
{{- end -}}
{{- end -}}
