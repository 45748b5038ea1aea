{{/*
Names, labels and the values every template shares. Cross-field rules that values.schema.json
cannot say clearly live in weft.validate, included once from the agent's ConfigMap.
*/}}

{{- define "weft.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "weft.labels" -}}
app.kubernetes.io/name: weft
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
weft.io/cluster: {{ .Values.cluster.name }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "agent"). */}}
{{- define "weft.selector" -}}
app.kubernetes.io/name: weft
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "weft.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* etcd endpoints (host:port, https://host:port with etcd.tls) for the agents and the clustermesh-apiserver, as a JSON list. */}}
{{- define "weft.etcdEndpoints" -}}
{{- $scheme := ternary "https://" "" .Values.etcd.tls.enabled -}}
{{- $out := list -}}
{{- range (.Values.etcd.endpoints | default (list (printf "%s:%d" .Values.etcd.service.clusterIP (int .Values.etcd.clientPort)))) -}}
{{- $out = append $out (printf "%s%s" $scheme .) -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/*
With etcd.tls: the Secret (ca.crt, tls.crt, tls.key) a component presents to etcd, mounted at
/etc/weft/etcd-tls: (dict "root" $ "component" "agent"|"clustermesh"). etcd-secrets.yaml issues
them; with an external etcd, etcd.tls.existingSecret serves both.
*/}}
{{- define "weft.etcdClientSecret" -}}
{{- .root.Values.etcd.tls.existingSecret | default (printf "%s-etcd-%s" (include "weft.fullname" .root) .component) -}}
{{- end -}}

{{/* The etcdTls entry of the agent's and the apiserver's configurations: the files of weft.etcdClientSecret. */}}
{{- define "weft.etcdTlsFiles" -}}
{{- toJson (dict "ca" "/etc/weft/etcd-tls/ca.crt" "cert" "/etc/weft/etcd-tls/tls.crt" "key" "/etc/weft/etcd-tls/tls.key") -}}
{{- end -}}

{{/*
Whether agents get per-node etcd credentials from the etcd credential issuer (the deployed etcd
with TLS): then the agent mounts only the etcd CA, and writes its own certificate and key, issued
for its node, under /var/run/weft (docs/credentials.md). An external etcd keeps the shared client
certificate of etcd.tls.existingSecret.
*/}}
{{- define "weft.perNodeEtcd" -}}
{{- if and .Values.etcd.tls.enabled (not .Values.etcd.endpoints) -}}true{{- end -}}
{{- end -}}

{{/* The agent's etcdTls: per node (its own files, written by the agent) or the shared Secret's. */}}
{{- define "weft.agentEtcdTlsFiles" -}}
{{- if include "weft.perNodeEtcd" . -}}
{{- toJson (dict "ca" "/etc/weft/etcd-tls/ca.crt" "cert" "/var/run/weft/etcd-client.crt" "key" "/var/run/weft/etcd-client.key") -}}
{{- else -}}
{{- include "weft.etcdTlsFiles" . -}}
{{- end -}}
{{- end -}}

{{- define "weft.ipsecSecretName" -}}
{{- .Values.encryption.ipsec.existingSecret | default (printf "%s-ipsec" (include "weft.fullname" .)) -}}
{{- end -}}

{{/*
Rules across values. Messages name the value, as the schema's do.
*/}}
{{- define "weft.validate" -}}
{{- $v := .Values -}}
{{- if and $v.prometheus.serviceMonitor.enabled (not $v.prometheus.enabled) -}}
{{- fail "prometheus.serviceMonitor.enabled needs prometheus.enabled: the ServiceMonitors would select endpoints that serve nothing" -}}
{{- end -}}
{{- /* Ports on the host network: the agent is on every node, the relay and the apiserver may share one. */ -}}
{{- $ports := list (list "observer.port" $v.observer.port) -}}
{{- if $v.observer.relay.enabled -}}
{{- $ports = append $ports (list "observer.relay.port" $v.observer.relay.port) -}}
{{- end -}}
{{- if $v.prometheus.enabled -}}
{{- $ports = append $ports (list "prometheus.agent.port" $v.prometheus.agent.port) -}}
{{- if $v.clustermesh.enabled -}}
{{- $ports = append $ports (list "prometheus.clustermesh.port" $v.prometheus.clustermesh.port) -}}
{{- end -}}
{{- if $v.observer.relay.enabled -}}
{{- $ports = append $ports (list "prometheus.relay.port" $v.prometheus.relay.port) -}}
{{- end -}}
{{- end -}}
{{- range $i, $a := $ports -}}
{{- range $j, $b := $ports -}}
{{- if and (lt $j $i) (eq (int (index $a 1)) (int (index $b 1))) -}}
{{- fail (printf "%s %d is %s: both listen on the node" (index $a 0) (int (index $a 1)) (index $b 0)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $names := dict -}}
{{- $ids := dict -}}
{{- range $i, $r := $v.clustermesh.remotes -}}
{{- $at := printf "clustermesh.remotes[%d] (%s)" $i $r.name -}}
{{- if eq $r.name $v.cluster.name -}}
{{- fail (printf "%s: name %s is this cluster's own name (cluster.name)" $at $r.name) -}}
{{- end -}}
{{- if eq (int $r.id) (int $v.cluster.id) -}}
{{- fail (printf "%s: cluster id %d is this cluster's own id (cluster.id)" $at (int $r.id)) -}}
{{- end -}}
{{- if hasKey $names $r.name -}}
{{- fail (printf "%s: name %s is configured twice" $at $r.name) -}}
{{- end -}}
{{- if hasKey $ids (toString (int $r.id)) -}}
{{- fail (printf "%s: cluster id %d is already used by remote %s" $at (int $r.id) (get $ids (toString (int $r.id)))) -}}
{{- end -}}
{{- $_ := set $names $r.name true -}}
{{- $_ := set $ids (toString (int $r.id)) $r.name -}}
{{- if and $v.clustermesh.enabled (not $r.tls) -}}
{{- if eq $v.tls.mode "auto" -}}
{{- fail (printf "%s: tls (the remote's CA and our client certificate from it) is required with tls.mode=auto; or give both clusters the same CA with tls.mode=provided" $at) -}}
{{- else if not $v.tls.ca.key -}}
{{- fail (printf "%s: without tls, the chart issues our client certificate from the shared CA, so tls.ca.key is required" $at) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and $v.clustermesh.enabled (eq $v.tls.mode "provided") -}}
{{- if not $v.tls.ca.cert -}}
{{- fail "tls.ca.cert is required with tls.mode=provided" -}}
{{- end -}}
{{- if and (not $v.tls.ca.key) (not (and $v.tls.server.cert $v.tls.server.key)) -}}
{{- fail "tls.mode=provided needs tls.ca.key, or tls.server.cert and tls.server.key" -}}
{{- end -}}
{{- end -}}
{{- if and $v.etcd.endpoints $v.etcd.tls.enabled (not $v.etcd.tls.existingSecret) -}}
{{- fail "etcd.endpoints: an external etcd needs etcd.tls.existingSecret (a Secret with ca.crt, tls.crt and tls.key for its clients), or etcd.tls.enabled=false to connect without TLS" -}}
{{- end -}}
{{- if ne (not $v.tls.server.cert) (not $v.tls.server.key) -}}
{{- fail "tls.server.cert and tls.server.key go together: give both or neither" -}}
{{- end -}}
{{- end -}}

{{- /*
The node holding the deployed etcd's data: the node its Deployment is pinned to already, else the
node its pod runs on (lookup; nothing with helm template or on a first install, where the scheduler
picks and the next upgrade pins it there).
*/ -}}
{{- define "weft.etcdNode" -}}
{{- $root := .root -}}
{{- $node := "" -}}
{{- with lookup "apps/v1" "Deployment" $root.Release.Namespace .name -}}
{{- range (((((.spec.template.spec.affinity | default dict).nodeAffinity | default dict).requiredDuringSchedulingIgnoredDuringExecution | default dict).nodeSelectorTerms) | default list) -}}
{{- range (.matchFields | default list) -}}
{{- if and (eq .key "metadata.name") (eq .operator "In") (eq (len .values) 1) -}}
{{- $node = index .values 0 -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if not $node -}}
{{- range (lookup "v1" "Pod" $root.Release.Namespace "").items | default list -}}
{{- $labels := .metadata.labels | default dict -}}
{{- if and (eq (get $labels "app.kubernetes.io/component") "etcd") (eq (get $labels "app.kubernetes.io/instance") $root.Release.Name) (eq (get $labels "app.kubernetes.io/name") "weft") .spec.nodeName (not .metadata.deletionTimestamp) -}}
{{- $node = .spec.nodeName -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $node -}}
{{- end -}}
