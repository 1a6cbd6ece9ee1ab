{{/*
The four services and what each talks to: one table that the Deployments, the Services and
the NetworkPolicies are all made from (tests/helm checks it against each service's settings).
  calls:    other services it calls over HTTP (README "Internal calls")
  uses:     external dependencies it connects to
  peers:    replicas call each other (auth's verify-cache drops)
  consumes: runs a Kafka consumer group (topics need a partition per replica)
*/}}
{{- define "osmcloud.serviceTable" -}}
auth:
  calls: [billing]
  uses: [mongo, kafka, smtp]
  peers: true
  consumes: true
files:
  calls: [auth, trash]
  uses: [mongo, kafka, s3]
  peers: false
  consumes: true
trash:
  calls: [files, auth]
  uses: [mongo, kafka]
  peers: false
  consumes: true
billing:
  calls: [files]
  uses: [mongo, kafka]
  peers: false
  consumes: true
{{- end -}}

{{- define "osmcloud.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Name of a component's objects: <fullname>-<component> */}}
{{- define "osmcloud.componentName" -}}
{{- printf "%s-%s" (include "osmcloud.fullname" .root) .name -}}
{{- end -}}

{{- define "osmcloud.selectorLabels" -}}
app.kubernetes.io/name: osmcloud
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{- define "osmcloud.labels" -}}
{{ include "osmcloud.selectorLabels" . }}
app.kubernetes.io/part-of: osmcloud
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* Labels of every pod of the release (for the default-deny policy) */}}
{{- define "osmcloud.releaseSelector" -}}
app.kubernetes.io/name: osmcloud
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* A service's values: serviceDefaults overlaid with its own section, as YAML */}}
{{- define "osmcloud.serviceValues" -}}
{{- $own := index .root.Values .name | default dict -}}
{{- toYaml (mergeOverwrite (deepCopy .root.Values.serviceDefaults) (deepCopy $own)) -}}
{{- end -}}

{{/* The most replicas a component can run: its HPA's maxReplicas, else replicas */}}
{{- define "osmcloud.maxReplicas" -}}
{{- if .autoscaling.enabled -}}{{ .autoscaling.maxReplicas }}{{- else -}}{{ .replicas }}{{- end -}}
{{- end -}}

{{/* Partitions per topic: at least the largest replica count of a consuming service */}}
{{- define "osmcloud.topicPartitions" -}}
{{- $root := . -}}
{{- $needed := 4 -}}
{{- range $name, $svc := fromYaml (include "osmcloud.serviceTable" $root) -}}
{{- if $svc.consumes -}}
{{- $v := fromYaml (include "osmcloud.serviceValues" (dict "root" $root "name" $name)) -}}
{{- $n := int (include "osmcloud.maxReplicas" $v) -}}
{{- if gt $n $needed -}}{{- $needed = $n -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- $set := int $root.Values.kafka.topicPartitions -}}
{{- if eq $set 0 -}}
{{- $needed -}}
{{- else if lt $set $needed -}}
{{- fail (printf "kafka.topicPartitions=%d is below %d, the most replicas a consuming service (every service runs a consumer group) may run: a consumer group leaves replicas beyond the partition count idle. Raise it or leave it 0." $set $needed) -}}
{{- else -}}
{{- $set -}}
{{- end -}}
{{- end -}}

{{- define "osmcloud.secretName" -}}
{{- if .Values.secrets.existingSecret -}}
{{- .Values.secrets.existingSecret -}}
{{- else -}}
{{- include "osmcloud.fullname" . -}}
{{- end -}}
{{- end -}}

{{- define "osmcloud.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "osmcloud.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* A secret value given inline: present, not a published default, long enough */}}
{{- define "osmcloud.checkSecret" -}}
{{- $value := required (printf "secrets.%s is required (or set secrets.existingSecret to a Secret you manage): this chart has no default secrets. Generate one with: openssl rand -hex 32" .key) .value -}}
{{- if has $value (list "change-me" "changeme" "osmcloud" "osmcloud-secret" "osmcloud-sandbox-key" "secret" "password" "minioadmin") -}}
{{- fail (printf "secrets.%s is a published default; generate a new one with: openssl rand -hex 32" .key) -}}
{{- end -}}
{{- if lt (len $value) 16 -}}
{{- fail (printf "secrets.%s must be at least 16 characters long; generate one with: openssl rand -hex 32" .key) -}}
{{- end -}}
{{- end -}}

{{/* Everything the chart cannot run without; included by every workload */}}
{{- define "osmcloud.validate" -}}
{{- if not .Values.secrets.existingSecret -}}
{{- include "osmcloud.checkSecret" (dict "key" "gatewaySecret" "value" .Values.secrets.gatewaySecret) -}}
{{- include "osmcloud.checkSecret" (dict "key" "s3AccessKey" "value" .Values.secrets.s3AccessKey) -}}
{{- include "osmcloud.checkSecret" (dict "key" "s3SecretKey" "value" .Values.secrets.s3SecretKey) -}}
{{- if not .Values.mongo.urlSecret.name -}}
{{- $_ := required "mongo.url is required (a mongodb:// URL of a replica set, with credentials), or mongo.urlSecret.name/key naming a Secret that holds it, or MONGO_URL in secrets.existingSecret" .Values.mongo.url -}}
{{- end -}}
{{- end -}}
{{- if .Values.mongo.urlSecret.name -}}
{{- $_ := required "mongo.urlSecret.key is required with mongo.urlSecret.name (the MongoDB community operator's Secret has connectionString.standard)" .Values.mongo.urlSecret.key -}}
{{- end -}}
{{- $_ := required "kafka.bootstrap is required: Kafka's bootstrap address, e.g. my-cluster-kafka-bootstrap.kafka.svc:9092" .Values.kafka.bootstrap -}}
{{- $_ := required "s3.endpoint is required: host:port of an S3 API" .Values.s3.endpoint -}}
{{- $_ := required "smtp.host is required: an SMTP relay auth mails login codes through" .Values.smtp.host -}}
{{- $_ := include "osmcloud.topicPartitions" . -}}
{{- end -}}

{{/* The image of a service */}}
{{- define "osmcloud.image" -}}
{{- if .values.image -}}
{{- .values.image -}}
{{- else -}}
{{- printf "%s%s:%s" .root.Values.image.repositoryPrefix .name (.root.Values.image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* Security contexts: non-root, no privilege escalation, read-only root, no capabilities */}}
{{- define "osmcloud.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "osmcloud.containerSecurityContext" -}}
privileged: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* NetworkPolicy egress rule to an external dependency: its peers (or anywhere) on its port */}}
{{- define "osmcloud.egressTo" -}}
- ports:
    - protocol: TCP
      port: {{ .port }}
  {{- with .peers }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/* Port of S3's host:port (default 443 or 80 by s3.secure) */}}
{{- define "osmcloud.s3Port" -}}
{{- $parts := splitList ":" .Values.s3.endpoint -}}
{{- if gt (len $parts) 1 -}}
{{- last $parts -}}
{{- else if .Values.s3.secure -}}
443
{{- else -}}
80
{{- end -}}
{{- end -}}

{{/* Probes of a container listening on .port: alive = /healthz, ready = .readyPath */}}
{{- define "osmcloud.probes" -}}
startupProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 2
  timeoutSeconds: 2
  failureThreshold: 60
livenessProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 6
readinessProbe:
  httpGet: {path: {{ .readyPath }}, port: http}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
{{- end -}}
