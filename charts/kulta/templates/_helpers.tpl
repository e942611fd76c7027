{{- define "kulta.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kulta.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kulta.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kulta.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- /* The selector labels of one Deployment's Pods, for a dict {root, shard}: the chart's
selector labels for the main Deployment (as before sharding, so upgrades keep it), and a
shard's own name and key for a shard's, so that no two Deployments select each other's Pods. */}}
{{- define "kulta.instanceLabels" -}}
{{- if .shard -}}
app.kubernetes.io/name: {{ include "kulta.name" .root }}-shard
app.kubernetes.io/instance: {{ .root.Release.Name }}
kulta.io/shard: {{ .shard | quote }}
{{- else -}}
{{ include "kulta.selectorLabels" .root }}
{{- end -}}
{{- end -}}

{{- define "kulta.labels" -}}
{{ include "kulta.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "kulta.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kulta.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The controller's permissions: what internal/controller/rollout's RBAC markers list, and each
enabled provider's, what its package's markers list (tests check). */}}
{{- define "kulta.rules" -}}
- apiGroups: ["kulta.io"]
  resources: ["rollouts"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["kulta.io"]
  resources: ["rollouts/status"]
  verbs: ["patch"]
- apiGroups: ["kulta.io"]
  resources: ["rollouts/finalizers"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "patch"]
{{- if .Values.providers.gatewayAPI.enabled }}
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes", "grpcroutes"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["referencegrants"]
  verbs: ["get", "list", "watch"]
{{- end }}
{{- if .Values.providers.istio.enabled }}
- apiGroups: ["networking.istio.io"]
  resources: ["virtualservices", "destinationrules"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}
{{- if .Values.providers.nginx.enabled }}
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- end }}
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}

{{/* The traffic providers the controller runs, for --traffic-providers. */}}
{{- define "kulta.trafficProviders" -}}
{{- $names := list -}}
{{- if .Values.providers.gatewayAPI.enabled }}{{ $names = append $names "gatewayAPI" }}{{ end -}}
{{- if .Values.providers.istio.enabled }}{{ $names = append $names "istio" }}{{ end -}}
{{- if .Values.providers.nginx.enabled }}{{ $names = append $names "nginx" }}{{ end -}}
{{- join "," $names -}}
{{- end -}}

{{/* The notification services as the controller reads them (--notifications-config): urlKey
and tokenKey become files of the mounted Secret. */}}
{{- define "kulta.notificationsConfig" -}}
{{- $services := list -}}
{{- range .Values.notifications.services -}}
{{- $s := dict "name" .name "type" .type -}}
{{- if .url }}{{ $_ := set $s "url" .url }}{{ end -}}
{{- if .urlKey }}{{ $_ := set $s "urlFile" (printf "/etc/kulta/notification-secrets/%s" .urlKey) }}{{ end -}}
{{- if .tokenKey }}{{ $_ := set $s "tokenFile" (printf "/etc/kulta/notification-secrets/%s" .tokenKey) }}{{ end -}}
{{- with .triggers }}{{ $_ := set $s "triggers" . }}{{ end -}}
{{- with .template }}{{ $_ := set $s "template" . }}{{ end -}}
{{- $services = append $services $s -}}
{{- end -}}
{{- toYaml (dict "services" $services) -}}
{{- end -}}

{{- /* What the values schema cannot judge alone, refused with the fields named: more than one
replica without leader election (each would reconcile the same Rollouts), and a release name or
shard key that makes a resource name (a metrics Service's is the longest) longer than the 63
characters Kubernetes allows. */}}
{{- define "kulta.validate" -}}
{{- if and (not .Values.leaderElection.enabled) (gt (int .Values.replicaCount) 1) -}}
{{- fail (printf "replicaCount is %d but leaderElection.enabled is false: every replica would reconcile the same Rollouts (in each shard too); set replicaCount to 1 or enable leader election" (int .Values.replicaCount)) -}}
{{- end -}}
{{- $main := printf "%s-metrics" (include "kulta.fullname" .) -}}
{{- if gt (len $main) 63 -}}
{{- fail (printf "the release name makes the metrics Service name %q, %d characters, longer than Kubernetes' 63; use a shorter release name" $main (len $main)) -}}
{{- end -}}
{{- range .Values.sharding.shards -}}
{{- $name := printf "%s-shard-%s-metrics" (include "kulta.fullname" $) . -}}
{{- if gt (len $name) 63 -}}
{{- fail (printf "sharding.shards: the key %q makes the metrics Service name %q, %d characters, longer than Kubernetes' 63; use a shorter key or release name" . $name (len $name)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
