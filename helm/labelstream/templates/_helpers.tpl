{{/*
Names, labels and the pieces every workload shares. The six services are rendered by ONE
generic template (workloads.yaml) ranging over .Values.services; what differs between them is
data: their values block and the topics they consume (labelstream.consumedTopics below).
*/}}

{{- define "labelstream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "labelstream.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The name of one component's objects: <fullname>-<component> (at most 63 characters). */}}
{{- define "labelstream.componentName" -}}
{{- printf "%s-%s" (include "labelstream.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "labelstream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "labelstream.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "labelstream.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "labelstream.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: labelstream
{{- end -}}

{{/* Labels of the release's objects that belong to no single component (Secret, ServiceAccount, ...). */}}
{{- define "labelstream.commonLabels" -}}
{{ include "labelstream.labels" (dict "root" . "component" "shared") }}
{{- end -}}

{{- define "labelstream.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "labelstream.tritonImage" -}}
{{- if .Values.triton.image.repository -}}
{{- printf "%s:%s" .Values.triton.image.repository (default (default .Chart.AppVersion .Values.image.tag) .Values.triton.image.tag) -}}
{{- else -}}
{{- include "labelstream.image" . -}}
{{- end -}}
{{- end -}}

{{- define "labelstream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "labelstream.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The topics each service consumes, as the code subscribes to them (run_service(...) in
services/labelstream/<service>/__main__.py; services/tests/test_helm_chart.py checks they agree).
The consumer group of a service is always labelstream-<service>. Not values: changing them here
would not change what the code consumes.
*/}}
{{- define "labelstream.consumedTopics" -}}
ingest: [items.raw]
inference: [items.accepted, quality.events]
router: [predictions, quality.events]
dispatcher: [tasks.human, quality.events]
aggregator: [labels.auto, responses.human, quality.events]
monitor: [items.accepted, items.dlq, predictions, labels.auto, tasks.human, responses.human, labels.final, quality.events]
{{- end -}}

{{/*
The web page a service serves, as its code does (dispatcher/web.py: the annotator page;
monitor/dashboard_web.py: the dashboard), or "" when it serves none or values `web` disable it.
Call with (dict "root" $ "name" <service>).
*/}}
{{- define "labelstream.webPage" -}}
{{- $page := get (dict "dispatcher" "annotator" "monitor" "dashboard") .name -}}
{{- if and $page (get .root.Values.web $page).enabled }}{{ $page }}{{ end -}}
{{- end -}}

{{- define "labelstream.mongodbSecretName" -}}
{{- if .Values.mongodb.existingSecret -}}
{{- .Values.mongodb.existingSecret -}}
{{- else -}}
{{- printf "%s-mongodb" (include "labelstream.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "labelstream.authSecretName" -}}
{{- if .Values.auth.existingSecret -}}
{{- .Values.auth.existingSecret -}}
{{- else -}}
{{- printf "%s-auth" (include "labelstream.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The port the kubelet's gRPC probes ask: the plaintext health port when the gRPC port speaks TLS. */}}
{{- define "labelstream.grpcProbePort" -}}
{{- if .Values.grpcTls.enabled }}{{ .Values.grpcTls.healthPort }}{{ else }}{{ .Values.ports.grpc }}{{ end -}}
{{- end -}}

{{/* The API tokens of labelstream.common.auth, only ever through secretKeyRef (env list entries). */}}
{{- define "labelstream.authSecretEnv" -}}
{{- $auth := .Values.auth -}}
{{- range $variable, $key := dict "LABELSTREAM_ADMIN_TOKEN" (list $auth.adminTokenKey $auth.adminToken) "LABELSTREAM_SERVICE_TOKEN" (list $auth.serviceTokenKey $auth.serviceToken) }}
{{- if or $auth.existingSecret (last $key) }}
- name: {{ $variable }}
  valueFrom:
    secretKeyRef:
      name: {{ include "labelstream.authSecretName" $ }}
      key: {{ first $key }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "labelstream.tritonUrl" -}}
{{- if .Values.triton.enabled -}}
{{- printf "%s:%d" (include "labelstream.componentName" (dict "root" . "component" "triton")) 8001 -}}
{{- else -}}
{{- required "triton.enabled is false: set triton.externalUrl to the host:port of the Triton gRPC endpoint" .Values.triton.externalUrl -}}
{{- end -}}
{{- end -}}

{{/*
How every Kafka client (the six services and the topic Job) connects, as plain settings (a YAML map
of LABELSTREAM_KAFKA_* variables): bootstrap, topic prefix, security protocol, the mounted CA
(SSL, SASL_SSL) and the SASL mechanism and user (SASL_*). The SASL password is never among them: it
comes from labelstream.kafkaSecretEnv. Call with the root context.
*/}}
{{- define "labelstream.kafkaEnv" -}}
{{- $kafka := .Values.kafka -}}
{{- $env := dict
  "LABELSTREAM_KAFKA_BOOTSTRAP" $kafka.bootstrap
  "LABELSTREAM_KAFKA_TOPIC_PREFIX" $kafka.topicPrefix
  "LABELSTREAM_KAFKA_SECURITY_PROTOCOL" $kafka.securityProtocol
-}}
{{- if include "labelstream.kafkaCaMounted" . -}}
{{- $_ := set $env "LABELSTREAM_KAFKA_SSL_CAFILE" "/etc/labelstream/kafka-tls/ca.crt" -}}
{{- end -}}
{{- if include "labelstream.kafkaSasl" . -}}
{{- $_ := set $env "LABELSTREAM_KAFKA_SASL_MECHANISM" $kafka.sasl.mechanism -}}
{{- $_ := set $env "LABELSTREAM_KAFKA_SASL_USERNAME" (required "kafka.securityProtocol is SASL_*: set kafka.sasl.username" $kafka.sasl.username) -}}
{{- end -}}
{{- toYaml $env -}}
{{- end -}}

{{/* "true" when the Kafka security protocol authenticates with SASL (SASL_PLAINTEXT, SASL_SSL). */}}
{{- define "labelstream.kafkaSasl" -}}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol }}true{{ end -}}
{{- end -}}

{{/* "true" when the Kafka clients get the CA of kafka.tls.caSecret (a TLS protocol and a Secret named). */}}
{{- define "labelstream.kafkaCaMounted" -}}
{{- if and (has .Values.kafka.securityProtocol (list "SSL" "SASL_SSL")) .Values.kafka.tls.caSecret }}true{{ end -}}
{{- end -}}

{{/* The SASL password of the Kafka clients, only ever through a secretKeyRef (env list entries). */}}
{{- define "labelstream.kafkaSecretEnv" -}}
{{- if include "labelstream.kafkaSasl" . }}
- name: LABELSTREAM_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ required "kafka.securityProtocol is SASL_*: set kafka.sasl.passwordSecret (a Secret holding the password under kafka.sasl.passwordKey)" .Values.kafka.sasl.passwordSecret }}
      key: {{ .Values.kafka.sasl.passwordKey }}
{{- end }}
{{- end -}}

{{/*
The environment of one service: exactly the LABELSTREAM_* variables of the settings table
(services/labelstream/common/settings.py). Chart-wide settings first, then the service's own
`env` map (which may override them, except the Kafka security settings and the Secrets, which the
schema keeps out of it); the MongoDB URI and the SASL password only ever come from Secrets.
Call with (dict "root" $ "name" <service> "svc" <values block>).
*/}}
{{- define "labelstream.serviceEnv" -}}
{{- $v := .root.Values -}}
{{- $consumer := $v.kafka.consumer -}}
{{- $env := include "labelstream.kafkaEnv" .root | fromYaml -}}
{{- $_ := merge $env (dict
  "LABELSTREAM_KAFKA_SESSION_TIMEOUT_MS" (toString (int $consumer.sessionTimeoutMs))
  "LABELSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS" (toString (int $consumer.heartbeatIntervalMs))
  "LABELSTREAM_KAFKA_MAX_POLL_INTERVAL_MS" (toString (int $consumer.maxPollIntervalMs))
  "LABELSTREAM_KAFKA_POLL_MAX_RECORDS" (toString (int $consumer.pollMaxRecords))
  "LABELSTREAM_KAFKA_POLL_TIMEOUT_MS" (toString (int $consumer.pollTimeoutMs))
  "LABELSTREAM_MONGODB_DATABASE" $v.mongodb.database
  "LABELSTREAM_GRPC_PORT" (toString (int $v.ports.grpc))
  "LABELSTREAM_GRPC_BIND_HOST" "0.0.0.0"
  "LABELSTREAM_METRICS_PORT" (toString (int $v.ports.metrics))
  "LABELSTREAM_LOG_LEVEL" $v.logLevel
) -}}
{{- if include "labelstream.webPage" . -}}
{{- $_ := set $env "LABELSTREAM_HTTP_PORT" (toString (int $v.ports.http)) -}}
{{- end -}}
{{- if $v.grpcTls.enabled -}}
{{- $tls := "/etc/labelstream/grpc-tls" -}}
{{- $_ := merge $env (dict
  "LABELSTREAM_GRPC_TLS_CERT_FILE" (printf "%s/tls.crt" $tls)
  "LABELSTREAM_GRPC_TLS_KEY_FILE" (printf "%s/tls.key" $tls)
  "LABELSTREAM_GRPC_TLS_CA_FILE" (printf "%s/ca.crt" $tls)
  "LABELSTREAM_GRPC_HEALTH_PORT" (toString (int $v.grpcTls.healthPort))
) -}}
{{- if $v.grpcTls.mutual -}}
{{- $_ := merge $env (dict
  "LABELSTREAM_GRPC_TLS_CLIENT_CA_FILE" (printf "%s/ca.crt" $tls)
  "LABELSTREAM_GRPC_TLS_CLIENT_CERT_FILE" (printf "%s/tls.crt" $tls)
  "LABELSTREAM_GRPC_TLS_CLIENT_KEY_FILE" (printf "%s/tls.key" $tls)
) -}}
{{- end -}}
{{- end -}}
{{- with $v.telemetry -}}
{{- if .otlpEndpoint -}}
{{- $_ := merge $env (dict
  "OTEL_EXPORTER_OTLP_ENDPOINT" .otlpEndpoint
  "OTEL_EXPORTER_OTLP_INSECURE" (toString .insecure)
  "OTEL_SERVICE_NAME" (printf "labelstream-%s" $.name)
  "OTEL_TRACES_SAMPLER" "parentbased_traceidratio"
  "OTEL_TRACES_SAMPLER_ARG" (toString .samplerRatio)
  "LABELSTREAM_OTEL_INSTRUMENT" .instrument
) -}}
{{- if .resourceAttributes -}}
{{- $pairs := list -}}
{{- range $key := keys .resourceAttributes | sortAlpha -}}
{{- $pairs = append $pairs (printf "%s=%s" $key (get $.root.Values.telemetry.resourceAttributes $key)) -}}
{{- end -}}
{{- $_ := set $env "OTEL_RESOURCE_ATTRIBUTES" (join "," $pairs) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if eq .name "inference" -}}
{{- $_ := set $env "LABELSTREAM_TRITON_URL" (include "labelstream.tritonUrl" .root) -}}
{{- if $v.refits.enabled -}}
{{- $_ := set $env "LABELSTREAM_TRITON_MODEL_REPOSITORY" (include "labelstream.modelRepositoryPath" .root) -}}
{{- end -}}
{{- end -}}
{{- range $key, $value := .svc.env -}}
{{- $_ := set $env $key $value -}}
{{- end -}}
{{- range $key := keys $env | sortAlpha }}
- name: {{ $key }}
  value: {{ get $env $key | quote }}
{{- end }}
- name: LABELSTREAM_MONGODB_URI
  valueFrom:
    secretKeyRef:
      name: {{ include "labelstream.mongodbSecretName" .root }}
      key: {{ .root.Values.mongodb.existingSecretKey }}
{{- include "labelstream.kafkaSecretEnv" .root }}
{{- include "labelstream.authSecretEnv" .root }}
{{- with .root.Values.telemetry }}
{{- if and .otlpEndpoint .headersSecret }}
- name: OTEL_EXPORTER_OTLP_HEADERS
  valueFrom:
    secretKeyRef:
      name: {{ .headersSecret }}
      key: headers
{{- end }}
{{- end }}
{{- end -}}

{{/* Volumes and mounts every service container gets: a writable /tmp (the root filesystem is read-only), the MongoDB CA and the Kafka CA. */}}
{{- define "labelstream.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if .Values.mongodb.tls.caSecret }}
- name: mongodb-ca
  secret:
    secretName: {{ .Values.mongodb.tls.caSecret }}
    items:
      - key: {{ .Values.mongodb.tls.caKey }}
        path: ca.crt
{{- end }}
{{- include "labelstream.kafkaCaVolume" . }}
{{- if .Values.grpcTls.enabled }}
- name: grpc-tls
  secret:
    secretName: {{ required "grpcTls.enabled: set grpcTls.secret (a Secret with tls.crt, tls.key and ca.crt)" .Values.grpcTls.secret }}
    items:
      - {key: tls.crt, path: tls.crt}
      - {key: tls.key, path: tls.key}
      - {key: ca.crt, path: ca.crt}
{{- end }}
{{- end -}}

{{- define "labelstream.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.mongodb.tls.caSecret }}
- name: mongodb-ca
  mountPath: /etc/labelstream/mongodb-tls
  readOnly: true
{{- end }}
{{- include "labelstream.kafkaCaVolumeMount" . }}
{{- if .Values.grpcTls.enabled }}
- name: grpc-tls
  mountPath: /etc/labelstream/grpc-tls
  readOnly: true
{{- end }}
{{- end -}}

{{/* The Kafka CA (kafka.tls.caSecret) at /etc/labelstream/kafka-tls/ca.crt, for every Kafka client: services and topic Job. */}}
{{- define "labelstream.kafkaCaVolume" -}}
{{- if include "labelstream.kafkaCaMounted" . }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.tls.caSecret }}
    items:
      - key: {{ .Values.kafka.tls.caKey }}
        path: ca.crt
{{- end }}
{{- end -}}

{{- define "labelstream.kafkaCaVolumeMount" -}}
{{- if include "labelstream.kafkaCaMounted" . }}
- name: kafka-ca
  mountPath: /etc/labelstream/kafka-tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "labelstream.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.runAsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "labelstream.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
{{- end -}}

{{/*
The rule that makes scaling a consumer group useful: a group never has more busy members than
its topics have partitions. Fails the render when a service could run more replicas than that.
*/}}
{{- define "labelstream.checkPartitions" -}}
{{- $partitions := int .root.Values.topics.partitions -}}
{{- $most := int .svc.replicas -}}
{{- if .svc.autoscaling.enabled -}}
{{- if gt (int .svc.autoscaling.minReplicas) (int .svc.autoscaling.maxReplicas) -}}
{{- fail (printf "services.%s.autoscaling: minReplicas (%d) is larger than maxReplicas (%d)" .name (int .svc.autoscaling.minReplicas) (int .svc.autoscaling.maxReplicas)) -}}
{{- end -}}
{{- $most = int .svc.autoscaling.maxReplicas -}}
{{- end -}}
{{- if gt $most $partitions -}}
{{- fail (printf "services.%s can run %d replicas but topics.partitions is %d: members of the consumer group labelstream-%s beyond the partition count stay idle. Raise topics.partitions (and the partitions of existing topics) or lower the replicas/maxReplicas." .name $most $partitions .name) -}}
{{- end -}}
{{- end -}}

{{/*
Head refits (values `refits`): the model repository on a shared PersistentVolumeClaim, mounted at
/models in the Triton pod (init container, server, reloader sidecar) and in the inference pods. The
repository is the directory "repository" in it (not the volume's root, where a file system may keep
lost+found, which Triton would take for a model). Inference alone gets its path as
LABELSTREAM_TRITON_MODEL_REPOSITORY.
*/}}
{{- define "labelstream.modelsMountPath" -}}/models{{- end -}}
{{- define "labelstream.modelRepositoryPath" -}}/models/repository{{- end -}}

{{- define "labelstream.modelsClaimName" -}}
{{- default (include "labelstream.componentName" (dict "root" . "component" "models")) .Values.refits.persistence.existingClaim -}}
{{- end -}}

{{- define "labelstream.modelsVolume" -}}
- name: models
  persistentVolumeClaim:
    claimName: {{ include "labelstream.modelsClaimName" . }}
{{- end -}}

{{/* Call with (dict "root" $ "readOnly" true|false). */}}
{{- define "labelstream.modelsVolumeMount" -}}
- name: models
  mountPath: {{ include "labelstream.modelsMountPath" .root }}
  {{- with .root.Values.refits.persistence.subPath }}
  subPath: {{ . }}
  {{- end }}
  {{- if .readOnly }}
  readOnly: true
  {{- end }}
{{- end -}}

{{/* The pod security context of a pod mounting the refits volume: fsGroup owns it; no recursive chown on every start. */}}
{{- define "labelstream.modelsPodSecurityContext" -}}
{{ include "labelstream.podSecurityContext" . }}
fsGroupChangePolicy: OnRootMismatch
{{- end -}}

{{/* The most replicas a service can run (maxReplicas when it autoscales). Call with the service's values block. */}}
{{- define "labelstream.mostReplicas" -}}
{{- if .autoscaling.enabled }}{{ int .autoscaling.maxReplicas }}{{ else }}{{ int .replicas }}{{ end -}}
{{- end -}}

{{/* Fails the render on refits settings that cannot work, naming the values. */}}
{{- define "labelstream.checkRefits" -}}
{{- $r := .Values.refits -}}
{{- if $r.enabled -}}
{{- if not .Values.triton.enabled -}}
{{- fail (printf "refits.enabled needs the chart's Triton (triton.enabled): an external Triton (%s) would have to serve the inference pods' volume with explicit model control. Set refits.enabled to false, or triton.enabled to true." .Values.triton.externalUrl) -}}
{{- end -}}
{{- if .Values.triton.modelRepository.existingClaim -}}
{{- fail (printf "refits.enabled and triton.modelRepository.existingClaim (%s) are both set: with refits the model repository is the read-write claim of refits.persistence; name your claim in refits.persistence.existingClaim instead." .Values.triton.modelRepository.existingClaim) -}}
{{- end -}}
{{- if eq $r.persistence.accessMode "ReadWriteOnce" -}}
{{- $inference := 0 -}}
{{- if .Values.services.inference.enabled -}}
{{- $inference = int (include "labelstream.mostReplicas" .Values.services.inference) -}}
{{- end -}}
{{- $triton := int .Values.triton.replicas -}}
{{- if or (gt $inference 1) (gt $triton 1) -}}
{{- fail (printf "refits.persistence.accessMode is ReadWriteOnce: the model repository volume can be mounted on one node only, but services.inference can run %d replicas and triton.replicas is %d, and every one of them mounts it. Use a ReadWriteMany storage class (NFS, CephFS, EFS, Filestore, Azure Files) with accessMode ReadWriteMany, or run one inference replica and one Triton replica on the same node." $inference $triton) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Triton's model settings as the image's entrypoint reads them (deploy/image/entrypoint.sh): the
instance_group of every model, then each model's own (triton.models, and the instruction model's
single KIND_MODEL instance: vLLM places the model on its GPUs itself). A YAML map of variables.
*/}}
{{- define "labelstream.tritonModelEnv" -}}
{{- $t := .Values.triton -}}
{{- $env := dict "TRITON_INSTANCE_KIND" $t.instanceGroup.kind "TRITON_INSTANCE_COUNT" (toString (int $t.instanceGroup.count)) -}}
{{- $models := deepCopy $t.models -}}
{{- if $t.instructModel.enabled -}}
{{- $own := get $models $t.instructModel.name | default dict -}}
{{- with $own.instanceGroup -}}
{{- if or (ne .kind "KIND_MODEL") (ne (int .count) 1) -}}
{{- fail (printf "triton.models.%s.instanceGroup is %s x%d, but the instruction model runs as one KIND_MODEL instance: vLLM shards it over triton.instructModel.tensorParallelSize GPUs itself. Remove that instanceGroup." $t.instructModel.name .kind (int .count)) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $own "instanceGroup" (dict "kind" "KIND_MODEL" "count" 1) -}}
{{- $_ := set $models $t.instructModel.name $own -}}
{{- end -}}
{{- range $name, $model := $models -}}
{{- $prefix := printf "TRITON_MODEL_%s_" (upper $name) -}}
{{- with $model.instanceGroup -}}
{{- $_ := set $env (print $prefix "INSTANCE_KIND") .kind -}}
{{- $_ := set $env (print $prefix "INSTANCE_COUNT") (toString (int .count)) -}}
{{- end -}}
{{- if hasKey $model "maxBatchSize" -}}
{{- $_ := set $env (print $prefix "MAX_BATCH_SIZE") (toString (int $model.maxBatchSize)) -}}
{{- end -}}
{{- if hasKey $model "maxQueueDelayMicroseconds" -}}
{{- $_ := set $env (print $prefix "MAX_QUEUE_DELAY_US") (toString (int $model.maxQueueDelayMicroseconds)) -}}
{{- end -}}
{{- end -}}
{{- toYaml $env -}}
{{- end -}}

{{/* Fails the render on instruction-model settings that cannot work. */}}
{{- define "labelstream.checkInstructModel" -}}
{{- $m := .Values.triton.instructModel -}}
{{- if and .Values.triton.enabled $m.enabled -}}
{{- $gpus := 0 -}}
{{- with .Values.triton.resources.limits -}}
{{- if hasKey . "nvidia.com/gpu" }}{{ $gpus = int (get . "nvidia.com/gpu") }}{{ end -}}
{{- end -}}
{{- if lt $gpus (int $m.tensorParallelSize) -}}
{{- fail (printf "triton.instructModel shards %s over tensorParallelSize %d GPUs, but triton.resources.limits gives the Triton pod %d nvidia.com/gpu. Raise the GPU request and limit, or lower tensorParallelSize." $m.modelId (int $m.tensorParallelSize) $gpus) -}}
{{- end -}}
{{- end -}}
{{- end -}}
