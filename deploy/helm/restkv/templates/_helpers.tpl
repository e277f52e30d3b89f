{{/* Names and labels shared by every object of the chart. */}}
{{- define "restkv.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "restkv.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "restkv.selectorLabels" -}}
app.kubernetes.io/name: {{ include "restkv.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "restkv.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "restkv.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: server
{{- end -}}

{{- define "restkv.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "restkv.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "restkv.apiKeySecretName" -}}
{{- default (printf "%s-api-key" (include "restkv.fullname" .)) .Values.apiKey.existingSecret -}}
{{- end -}}

{{- define "restkv.modelClaimName" -}}
{{- if eq .Values.model.volume.type "existingClaim" -}}
{{- required "model.volume.existingClaim is required with model.volume.type=existingClaim" .Values.model.volume.existingClaim -}}
{{- else -}}
{{- printf "%s-models" (include "restkv.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Seconds the kubelet waits after the preStop hook starts: the sleep, the
     server's drain and a margin for the final flush and exit. */}}
{{- define "restkv.terminationGracePeriodSeconds" -}}
{{- add (int .Values.drain.preStopSleepSeconds) (int .Values.server.shutdownTimeout) (int .Values.drain.extraGraceSeconds) -}}
{{- end -}}

{{/* The PromQL series the autoscaler reads: requests waiting in this release's pods. */}}
{{- define "restkv.queueDepthQuery" -}}
sum(restkv:num_requests_waiting{namespace="{{ .Release.Namespace }}",service="{{ include "restkv.fullname" . }}"})
{{- end -}}
