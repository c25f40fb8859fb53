{{/* The output namespace: the controller and every mirror's cache. */}}
{{- define "mirror-synth.namespace" -}}
{{- .Values.namespace -}}
{{- end -}}

{{/* The node agents' namespace: nodeAgent.namespace, else <namespace>-node. */}}
{{- define "mirror-synth.nodeAgentNamespace" -}}
{{- $ns := default (printf "%s-node" .Values.namespace) .Values.nodeAgent.namespace -}}
{{- if gt (len $ns) 63 -}}
{{- fail (printf "nodeAgent.namespace: '%s' is longer than 63 characters; set nodeAgent.namespace or a shorter namespace" $ns) -}}
{{- end -}}
{{- $ns -}}
{{- end -}}

{{/* The controller image: <repository>@<digest>, else <repository>:<tag or appVersion>. */}}
{{- define "mirror-synth.image" -}}
{{- $repo := required "image.repository: set it to where you pushed the controller image (npm run build:image); mirror-synth publishes none" .Values.image.repository -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* What the schema cannot say: values that must agree with each other. */}}
{{- define "mirror-synth.checks" -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) -}}
{{- fail "replicas: more than one controller replica needs leaderElection.enabled (two would reconcile at once)" -}}
{{- end -}}
{{- if and .Values.networkPolicy.enabled (empty .Values.networkPolicy.apiServerCIDRs) -}}
{{- fail "networkPolicy.apiServerCIDRs: the controller must reach the API server; list its addresses (kubectl get endpointslices -n default -l kubernetes.io/service-name=kubernetes)" -}}
{{- end -}}
{{- $le := .Values.leaderElection -}}
{{- if le (int $le.leaseDurationSeconds) (int $le.renewDeadlineSeconds) -}}
{{- fail "leaderElection.leaseDurationSeconds must be longer than leaderElection.renewDeadlineSeconds" -}}
{{- end -}}
{{- if le (float64 $le.renewDeadlineSeconds) (mulf 1.2 $le.retryPeriodSeconds) -}}
{{- fail "leaderElection.renewDeadlineSeconds must be longer than 1.2 leaderElection.retryPeriodSeconds" -}}
{{- end -}}
{{- end -}}
