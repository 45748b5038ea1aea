// Command helm-render renders a Helm chart as `helm template` does, for tests on machines without
// Helm: Go's text/template with Sprig (Helm's own function library, Debian's build of the version
// Helm 3 pins), Helm's engine additions re-implemented as pkg/engine does them, values coalesced as
// pkg/chartutil does, and the merged values validated against values.schema.json with gojsonschema
// v1.2.0 (Helm 3's validator) before anything renders. Built offline in GOPATH mode from Debian
// packages (see charts/weft/README.md); test/chart.test.js builds it into build/helm-render.
//
//	helm-render [-f values.yaml]... [--set a.b=v]... [--set-string a.b=v]... [--name weft]
//	            [--namespace kube-system] [--upgrade] [--lookup objects.yaml] [--include-crds] CHART
//
// Deliberate limits: no subcharts, --set without list indexes or escapes (use a values file), and
// lookup answers from --lookup (objects as a cluster would return them) or, like `helm template`,
// with an empty map.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/BurntSushi/toml"
	"github.com/Masterminds/sprig"
	"github.com/ghodss/yaml"
	"github.com/gobwas/glob"
	"github.com/xeipuuv/gojsonschema"
)

// Metadata mirrors Helm's chart.Metadata, so templates see .Chart.Name, .Chart.AppVersion, ...
type Metadata struct {
	Name         string            `json:"name,omitempty"`
	Home         string            `json:"home,omitempty"`
	Sources      []string          `json:"sources,omitempty"`
	Version      string            `json:"version,omitempty"`
	Description  string            `json:"description,omitempty"`
	Keywords     []string          `json:"keywords,omitempty"`
	Maintainers  []interface{}     `json:"maintainers,omitempty"`
	Icon         string            `json:"icon,omitempty"`
	APIVersion   string            `json:"apiVersion,omitempty"`
	Condition    string            `json:"condition,omitempty"`
	Tags         string            `json:"tags,omitempty"`
	AppVersion   string            `json:"appVersion,omitempty"`
	Deprecated   bool              `json:"deprecated,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	KubeVersion  string            `json:"kubeVersion,omitempty"`
	Dependencies []interface{}     `json:"dependencies,omitempty"`
	Type         string            `json:"type,omitempty"`
}

// KubeVersion, VersionSet and Capabilities mirror chartutil's.
type KubeVersion struct{ Version, Major, Minor string }

func (k KubeVersion) String() string     { return k.Version }
func (k KubeVersion) GitVersion() string { return k.Version }

type VersionSet []string

func (v VersionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

type Capabilities struct {
	APIVersions VersionSet
	KubeVersion KubeVersion
	HelmVersion map[string]string
}

// files is Helm's .Files: every chart file that is not Chart.yaml, values, a template or a subchart.
type files map[string][]byte

func (f files) GetBytes(name string) []byte { return f[name] }
func (f files) Get(name string) string      { return string(f[name]) }
func (f files) Glob(pattern string) files {
	g, err := glob.Compile(pattern, '/')
	if err != nil {
		g, _ = glob.Compile("**")
	}
	out := files{}
	for name, data := range f {
		if g.Match(name) {
			out[name] = data
		}
	}
	return out
}
func (f files) AsConfig() string {
	m := map[string]string{}
	for k, v := range f {
		m[path.Base(k)] = string(v)
	}
	return toYAML(m)
}
func (f files) AsSecrets() string {
	m := map[string]string{}
	for k, v := range f {
		m[path.Base(k)] = base64.StdEncoding.EncodeToString(v)
	}
	return toYAML(m)
}
func (f files) Lines(p string) []string {
	if f[p] == nil {
		return []string{}
	}
	return strings.Split(strings.TrimSuffix(string(f[p]), "\n"), "\n")
}

type chart struct {
	meta      *Metadata
	values    map[string]interface{}
	schema    []byte
	templates map[string]string // "<chart name>/templates/x.yaml" -> source
	crds      map[string]string // "<chart name>/crds/x.yaml" -> content
	files     files
}

// loadChart reads a chart directory the way Helm's loader sorts its files.
func loadChart(dir string) (*chart, error) {
	c := &chart{templates: map[string]string{}, crds: map[string]string{}, files: files{}}
	ignore, err := readHelmignore(filepath.Join(dir, ".helmignore"))
	if err != nil {
		return nil, err
	}
	raw := map[string][]byte{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if ignored(ignore, rel, d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(p)
		raw[rel] = data
		return err
	})
	if err != nil {
		return nil, err
	}
	if raw["Chart.yaml"] == nil {
		return nil, fmt.Errorf("%s has no Chart.yaml", dir)
	}
	c.meta = &Metadata{}
	if err := yaml.Unmarshal(raw["Chart.yaml"], c.meta); err != nil {
		return nil, fmt.Errorf("cannot load Chart.yaml: %v", err)
	}
	if c.meta.APIVersion != "v2" || c.meta.Name == "" || c.meta.Version == "" {
		return nil, fmt.Errorf("Chart.yaml needs apiVersion v2, a name and a version")
	}
	if len(c.meta.Dependencies) > 0 {
		return nil, fmt.Errorf("chart dependencies are not supported by helm-render")
	}
	if c.values, err = readValues(raw["values.yaml"]); err != nil {
		return nil, fmt.Errorf("cannot load values.yaml: %v", err)
	}
	c.schema = raw["values.schema.json"]
	for rel, data := range raw {
		switch {
		case rel == "Chart.yaml" || rel == "values.yaml" || rel == "values.schema.json" || rel == "Chart.lock":
		case strings.HasPrefix(rel, "templates/"):
			// Helm's default ignore rule: hidden files under templates/.
			if !strings.HasPrefix(path.Base(rel), ".") {
				c.templates[c.meta.Name+"/"+rel] = string(data)
			}
		case strings.HasPrefix(rel, "charts/"):
			return nil, fmt.Errorf("subcharts (%s) are not supported by helm-render", rel)
		default:
			if strings.HasPrefix(rel, "crds/") {
				c.crds[c.meta.Name+"/"+rel] = string(data)
			}
			c.files[rel] = data
		}
	}
	return c, nil
}

// readHelmignore supports the .helmignore forms this repository uses: comments, globs and dir/.
func readHelmignore(p string) ([]string, error) {
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	var rules []string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "!") {
			return nil, fmt.Errorf(".helmignore: negated rule %q is not supported by helm-render", line)
		}
		rules = append(rules, line)
	}
	return rules, err
}

func ignored(rules []string, rel string, dir bool) bool {
	for _, r := range rules {
		if strings.HasSuffix(r, "/") {
			if !dir {
				continue
			}
			r = strings.TrimSuffix(r, "/")
		}
		if ok, _ := filepath.Match(r, rel); ok {
			return true
		}
		if ok, _ := filepath.Match(r, path.Base(rel)); ok && !strings.Contains(r, "/") {
			return true
		}
	}
	return false
}

// readValues is chartutil.ReadValues: YAML through JSON, so numbers are float64 as in Helm.
func readValues(data []byte) (map[string]interface{}, error) {
	vals := map[string]interface{}{}
	err := yaml.Unmarshal(data, &vals)
	if vals == nil {
		vals = map[string]interface{}{}
	}
	return vals, err
}

// mergeMaps is how Helm merges several -f files and --set values: later wins, tables merge.
func mergeMaps(a, b map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if bv, ok := v.(map[string]interface{}); ok {
			if av, ok := out[k].(map[string]interface{}); ok {
				out[k] = mergeMaps(av, bv)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// coalesce is chartutil.CoalesceValues for a chart without dependencies: user values win, tables
// merge, and a user's null deletes the chart's default.
func coalesce(user, defaults map[string]interface{}) map[string]interface{} {
	for key, def := range deepCopy(defaults).(map[string]interface{}) {
		uv, ok := user[key]
		switch {
		case !ok:
			user[key] = def
		case uv == nil:
			delete(user, key)
		default:
			ut, uok := uv.(map[string]interface{})
			dt, dok := def.(map[string]interface{})
			if uok && dok {
				coalesce(ut, dt)
			} else if uok && def != nil {
				fmt.Fprintf(os.Stderr, "warning: skipped value for %s: Not a table.\n", key)
			}
		}
	}
	return user
}

func deepCopy(v interface{}) interface{} {
	switch t := v.(type) {
	case map[string]interface{}:
		out := make(map[string]interface{}, len(t))
		for k, x := range t {
			out[k] = deepCopy(x)
		}
		return out
	case []interface{}:
		out := make([]interface{}, len(t))
		for i, x := range t {
			out[i] = deepCopy(x)
		}
		return out
	}
	return v
}

// parseSet applies one --set (typed as strvals does) or --set-string argument.
func parseSet(into map[string]interface{}, arg string, asString bool) error {
	if strings.ContainsAny(arg, "[]\\{}") {
		return fmt.Errorf("--set %q: list indexes, escapes and braces are not supported by helm-render; use a values file", arg)
	}
	for _, pair := range strings.Split(arg, ",") {
		eq := strings.IndexByte(pair, '=')
		if eq <= 0 {
			return fmt.Errorf("--set %q: expected key=value", pair)
		}
		keys := strings.Split(pair[:eq], ".")
		m := into
		for _, k := range keys[:len(keys)-1] {
			next, ok := m[k].(map[string]interface{})
			if !ok {
				next = map[string]interface{}{}
				m[k] = next
			}
			m = next
		}
		m[keys[len(keys)-1]] = typedVal(pair[eq+1:], asString)
	}
	return nil
}

func typedVal(val string, asString bool) interface{} {
	switch {
	case asString:
		return val
	case strings.EqualFold(val, "true"):
		return true
	case strings.EqualFold(val, "false"):
		return false
	case strings.EqualFold(val, "null"):
		return nil
	case val == "0":
		return int64(0)
	}
	if val != "" && val[0] != '0' {
		if iv, err := strconv.ParseInt(val, 10, 64); err == nil {
			return iv
		}
	}
	return val
}

// validateSchema is chartutil.ValidateAgainstSingleSchema, message format included.
func validateSchema(chartName string, values map[string]interface{}, schema []byte) error {
	if schema == nil {
		return nil
	}
	valuesJSON, err := json.Marshal(values)
	if err != nil {
		return err
	}
	result, err := gojsonschema.Validate(gojsonschema.NewBytesLoader(schema), gojsonschema.NewBytesLoader(valuesJSON))
	if err != nil {
		return fmt.Errorf("%s: values.schema.json: %v", chartName, err)
	}
	if result.Valid() {
		return nil
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "values don't meet the specifications of the schema(s) in the following chart(s):\n%s:\n", chartName)
	for _, e := range result.Errors() {
		fmt.Fprintf(&sb, "- %s\n", e)
	}
	return errors.New(sb.String())
}

const warnStart, warnEnd = "HELM_ERR_START", "HELM_ERR_END"

var warnRegex = regexp.MustCompile(warnStart + `((?s).*)` + warnEnd)

func warnWrap(s string) string { return warnStart + s + warnEnd }

func toYAML(v interface{}) string {
	data, err := yaml.Marshal(v)
	if err != nil {
		return "" // Helm swallows errors inside templates
	}
	return strings.TrimSuffix(string(data), "\n")
}

// funcMap is engine.funcMap: Sprig without env and expandenv, plus Helm's own functions.
func funcMap(lookup func(string, string, string, string) (map[string]interface{}, error)) template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	f["getHostByName"] = func(string) string { return "" } // Helm without --enable-dns
	f["toYaml"] = toYAML
	f["fromYaml"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	f["fromYamlArray"] = func(s string) []interface{} {
		a := []interface{}{}
		if err := yaml.Unmarshal([]byte(s), &a); err != nil {
			a = []interface{}{err.Error()}
		}
		return a
	}
	f["toJson"] = func(v interface{}) string {
		data, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(data)
	}
	f["fromJson"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	f["fromJsonArray"] = func(s string) []interface{} {
		a := []interface{}{}
		if err := json.Unmarshal([]byte(s), &a); err != nil {
			a = []interface{}{err.Error()}
		}
		return a
	}
	f["toToml"] = func(v interface{}) string {
		b := &bytes.Buffer{}
		if err := toml.NewEncoder(b).Encode(v); err != nil {
			return err.Error()
		}
		return b.String()
	}
	f["required"] = func(warn string, val interface{}) (interface{}, error) {
		if s, ok := val.(string); val == nil || (ok && s == "") {
			return val, errors.New(warnWrap(warn))
		}
		return val, nil
	}
	f["fail"] = func(msg string) (string, error) { return "", errors.New(warnWrap(msg)) }
	f["lookup"] = lookup
	// Late-bound to a template (see bindIncludeTpl); declared here so parsing knows them.
	f["include"] = func(string, interface{}) string { return "not implemented" }
	f["tpl"] = func(string, interface{}) interface{} { return "not implemented" }
	return f
}

const recursionMax = 1000

// bindIncludeTpl gives t its include and tpl, closed over t, as engine.initFunMap does.
func bindIncludeTpl(t *template.Template, included map[string]int) {
	t.Funcs(template.FuncMap{
		"include": func(name string, data interface{}) (string, error) {
			if included[name] > recursionMax {
				return "", fmt.Errorf("rendering template has a nested reference name: %s: unable to execute template", name)
			}
			included[name]++
			defer func() { included[name]-- }()
			var buf strings.Builder
			err := t.ExecuteTemplate(&buf, name, data)
			return buf.String(), err
		},
		"tpl": func(text string, vals interface{}) (string, error) {
			clone, err := t.Clone()
			if err != nil {
				return "", fmt.Errorf("cannot clone template: %v", err)
			}
			clone.Option("missingkey=zero")
			bindIncludeTpl(clone, included)
			clone, err = clone.New(t.Name()).Parse(text)
			if err != nil {
				return "", fmt.Errorf("cannot parse template %q: %v", text, err)
			}
			var buf strings.Builder
			if err := clone.Execute(&buf, vals); err != nil {
				return "", fmt.Errorf("error during tpl function execution for %q: %v", text, err)
			}
			return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
		},
	})
}

// sortTemplates is engine.sortTemplates: deeper paths first, then reverse lexical order.
func sortTemplates(names []string) {
	sort.Slice(names, func(i, j int) bool {
		a, b := names[i], names[j]
		ca, cb := strings.Count(a, "/"), strings.Count(b, "/")
		if ca == cb {
			return a > b
		}
		return ca > cb
	})
}

func cleanupExecError(name string, err error) error {
	if _, ok := err.(template.ExecError); !ok {
		return err
	}
	tokens := strings.SplitN(err.Error(), ": ", 3)
	if len(tokens) != 3 {
		return fmt.Errorf("execution error in (%s): %s", name, err)
	}
	if parts := warnRegex.FindStringSubmatch(tokens[2]); len(parts) >= 2 {
		return fmt.Errorf("execution error at (%s): %s", tokens[1], parts[1])
	}
	return err
}

func cleanupParseError(name string, err error) error {
	tokens := strings.Split(err.Error(), ": ")
	if len(tokens) == 1 {
		return fmt.Errorf("parse error in (%s): %s", name, err)
	}
	return fmt.Errorf("parse error at (%s): %s", tokens[1], tokens[len(tokens)-1])
}

// render is engine.render: one parent template holding every file, then each non-partial executed.
func render(c *chart, top map[string]interface{}, lookup func(string, string, string, string) (map[string]interface{}, error)) (map[string]string, error) {
	t := template.New("gotpl").Option("missingkey=zero").Funcs(funcMap(lookup))
	bindIncludeTpl(t, map[string]int{})
	names := make([]string, 0, len(c.templates))
	for name := range c.templates {
		names = append(names, name)
	}
	sortTemplates(names)
	for _, name := range names {
		if _, err := t.New(name).Parse(c.templates[name]); err != nil {
			return nil, cleanupParseError(name, err)
		}
	}
	out := map[string]string{}
	for _, name := range names {
		if strings.HasPrefix(path.Base(name), "_") {
			continue
		}
		top["Template"] = map[string]interface{}{"Name": name, "BasePath": c.meta.Name + "/templates"}
		var buf strings.Builder
		if err := t.ExecuteTemplate(&buf, name, top); err != nil {
			return nil, cleanupExecError(name, err)
		}
		out[name] = strings.ReplaceAll(buf.String(), "<no value>", "")
	}
	return out, nil
}

var manifestSep = regexp.MustCompile(`(?:^|\s*\n)---\s*`)

// splitManifests is releaseutil.SplitManifests.
func splitManifests(s string) []string {
	var docs []string
	for _, d := range manifestSep.Split(strings.TrimSpace(s), -1) {
		if d = strings.TrimSpace(d); d != "" {
			docs = append(docs, d)
		}
	}
	return docs
}

// installOrder is releaseutil.InstallOrder: `helm template` prints manifests in this order.
var installOrder = []string{"PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding", "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList", "Service", "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment", "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService"}

type manifest struct{ source, kind, content string }

func sortManifests(rendered map[string]string) ([]manifest, error) {
	names := make([]string, 0, len(rendered))
	for name := range rendered {
		if !strings.HasSuffix(name, "NOTES.txt") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var out []manifest
	for _, name := range names {
		for _, doc := range splitManifests(rendered[name]) {
			var head struct {
				Kind string `json:"kind"`
			}
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				return nil, fmt.Errorf("YAML parse error on %s: %v", name, err)
			}
			out = append(out, manifest{name, head.Kind, doc})
		}
	}
	rank := map[string]int{}
	for i, k := range installOrder {
		rank[k] = i
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, aok := rank[out[i].kind]
		b, bok := rank[out[j].kind]
		switch {
		case !aok && !bok:
			return out[i].kind < out[j].kind
		case !aok:
			return false
		case !bok:
			return true
		}
		return a < b
	})
	return out, nil
}

// objectLookup answers lookup from the objects in a file, as a cluster holding them would.
func objectLookup(file string) (func(string, string, string, string) (map[string]interface{}, error), error) {
	var objects []map[string]interface{}
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		for _, doc := range splitManifests(string(data)) {
			o := map[string]interface{}{}
			if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
				return nil, fmt.Errorf("--lookup %s: %v", file, err)
			}
			objects = append(objects, o)
		}
	}
	return func(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
		items := []interface{}{}
		for _, o := range objects {
			md, _ := o["metadata"].(map[string]interface{})
			if o["apiVersion"] != apiVersion || o["kind"] != kind || (namespace != "" && md["namespace"] != namespace) {
				continue
			}
			if name == "" {
				items = append(items, o)
			} else if md["name"] == name {
				return deepCopy(o).(map[string]interface{}), nil
			}
		}
		if name == "" {
			return map[string]interface{}{"apiVersion": apiVersion, "kind": kind + "List", "items": items}, nil
		}
		return map[string]interface{}{}, nil
	}, nil
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func run() error {
	var valueFiles, sets, setStrings multi
	flag.Var(&valueFiles, "f", "values file (repeatable; later files win)")
	flag.Var(&valueFiles, "values", "same as -f")
	flag.Var(&sets, "set", "key.path=value (repeatable)")
	flag.Var(&setStrings, "set-string", "key.path=value, always a string (repeatable)")
	name := flag.String("name", "weft", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	upgrade := flag.Bool("upgrade", false, "render as an upgrade (.Release.IsUpgrade)")
	lookupFile := flag.String("lookup", "", "YAML objects that lookup finds, as if they were in the cluster")
	includeCrds := flag.Bool("include-crds", false, "print crds/ too, as helm template --include-crds")
	kubeVersion := flag.String("kube-version", "v1.31.0", ".Capabilities.KubeVersion")
	flag.Parse()
	if flag.NArg() != 1 {
		return errors.New("usage: helm-render [flags] CHART_DIR")
	}
	c, err := loadChart(flag.Arg(0))
	if err != nil {
		return err
	}
	user := map[string]interface{}{}
	for _, f := range valueFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		v, err := readValues(data)
		if err != nil {
			return fmt.Errorf("failed to parse %s: %v", f, err)
		}
		user = mergeMaps(user, v)
	}
	for _, s := range sets {
		if err := parseSet(user, s, false); err != nil {
			return err
		}
	}
	for _, s := range setStrings {
		if err := parseSet(user, s, true); err != nil {
			return err
		}
	}
	values := coalesce(user, c.values)
	if err := validateSchema(c.meta.Name, values, c.schema); err != nil {
		return err
	}
	lookup, err := objectLookup(*lookupFile)
	if err != nil {
		return err
	}
	kv := strings.Split(strings.TrimPrefix(*kubeVersion, "v"), ".")
	if len(kv) < 2 {
		return fmt.Errorf("--kube-version %q: expected vMAJOR.MINOR.PATCH", *kubeVersion)
	}
	top := map[string]interface{}{
		"Values":  values,
		"Chart":   c.meta,
		"Files":   c.files,
		"Release": map[string]interface{}{"Name": *name, "Namespace": *namespace, "IsUpgrade": *upgrade, "IsInstall": !*upgrade, "Revision": map[bool]int{false: 1, true: 2}[*upgrade], "Service": "Helm"},
		"Capabilities": &Capabilities{
			KubeVersion: KubeVersion{Version: *kubeVersion, Major: kv[0], Minor: kv[1]},
			APIVersions: VersionSet{"v1", "apps/v1", "batch/v1", "policy/v1", "rbac.authorization.k8s.io/v1", "networking.k8s.io/v1", "discovery.k8s.io/v1", "apiextensions.k8s.io/v1", "admissionregistration.k8s.io/v1", "coordination.k8s.io/v1", "scheduling.k8s.io/v1", "storage.k8s.io/v1", "autoscaling/v2"},
			HelmVersion: map[string]string{"Version": "v3-compatible (helm-render)", "GoVersion": runtime.Version()},
		},
		"Subcharts": map[string]interface{}{},
	}
	rendered, err := render(c, top, lookup)
	if err != nil {
		return err
	}
	manifests, err := sortManifests(rendered)
	if err != nil {
		return err
	}
	var out strings.Builder
	if *includeCrds {
		crdNames := make([]string, 0, len(c.crds))
		for n := range c.crds {
			crdNames = append(crdNames, n)
		}
		sort.Strings(crdNames)
		for _, n := range crdNames {
			fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", n, c.crds[n])
		}
	}
	for _, m := range manifests {
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", m.source, m.content)
	}
	_, err = os.Stdout.WriteString(out.String())
	return err
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
}
