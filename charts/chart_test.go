package charts_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/false-systems/kulta/internal/events/notify"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
)

// kubeVersion is the Kubernetes version the chart is rendered for, the one the tests run.
const kubeVersion = "v1.37.2"

var (
	update = flag.Bool("update", false, "rewrite the golden files in testdata/")
	env    *testenv.Env
)

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, &env))
}

func root(t *testing.T) string {
	t.Helper()
	r, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// helm runs the helm binary that `make helm-bin` builds from Go modules.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	// A missing binary fails the test here, not as the failure some tests expect of helm.
	if _, err := testutil.HelmBinary(root(t)); err != nil {
		t.Fatal(err)
	}
	return testutil.Helm(root(t), t.TempDir(), args...)
}

func valuesFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root(t), "charts", "kulta", "ci", "*-values.yaml"))
	if err != nil || len(files) < 3 {
		t.Fatalf("want at least 3 values files in charts/kulta/ci, found %d (%v)", len(files), err)
	}
	return files
}

func render(t *testing.T, valuesFile string, extra ...string) string {
	t.Helper()
	args := append([]string{"template", "kulta", "charts/kulta", "--namespace", "kulta-system", "--skip-crds", "--kube-version", kubeVersion, "-f", valuesFile}, extra...)
	out, err := helm(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestLint(t *testing.T) {
	for _, f := range valuesFiles(t) {
		if out, err := helm(t, "lint", "charts/kulta", "--strict", "--kube-version", kubeVersion, "-f", f); err != nil {
			t.Errorf("%s: %v\n%s", filepath.Base(f), err, out)
		}
	}
}

func TestTemplateGolden(t *testing.T) {
	for _, f := range valuesFiles(t) {
		name := strings.TrimSuffix(filepath.Base(f), "-values.yaml")
		t.Run(name, func(t *testing.T) {
			got := render(t, f)
			path := filepath.Join("testdata", name+".golden.yaml")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("reading golden file (run with -update to create it): %v", err)
			}
			if got != string(want) {
				t.Errorf("helm template output differs from %s (run `go test ./charts -update` and review)", path)
			}
		})
	}
}

func TestSchemaRejectsBadValues(t *testing.T) {
	for set, field := range map[string]string{
		"replicaCount=two":                           "replicaCount",
		"logging.level=verbose":                      "level",
		"watchNamespaces[0]=Not_Valid":               "watchNamespaces",
		"metrics.port=70000":                         "port",
		"unknownKey=1":                               "unknownKey",
		"analysis.prometheusAddress=prometheus:9090": "prometheusAddress",
		"goMemLimitRatio=1.5":                        "goMemLimitRatio",
		"sharding.shards[0]=Shard_1":                 "shards",
	} {
		_, err := helm(t, "template", "kulta", "charts/kulta", "--kube-version", kubeVersion, "--set", set)
		if err == nil {
			t.Errorf("--set %s was accepted", set)
			continue
		}
		if !strings.Contains(err.Error(), field) {
			t.Errorf("--set %s: the error must name %s: %v", set, field, err)
		}
	}
}

// TestChartRefusesUnsafeCombinations: values each valid alone but unsafe together are refused
// with the fields named: more than one replica without leader election, in the main
// Deployment or a shard's, and a shard key that makes a resource name over 63 characters.
func TestChartRefusesUnsafeCombinations(t *testing.T) {
	long := strings.Repeat("a", 40)
	for _, c := range []struct {
		release string
		sets    []string
		refused []string
	}{
		// replicaCount defaults to 2.
		{"kulta", []string{"leaderElection.enabled=false"}, []string{"replicaCount is 2", "leaderElection.enabled is false"}},
		{"kulta", []string{"leaderElection.enabled=false", "replicaCount=3", "sharding.shards[0]=s0"}, []string{"replicaCount is 3"}},
		// "my-long-release-kulta-shard-" and 40 characters and "-metrics": 76.
		{"my-long-release", []string{"sharding.shards[0]=s0", "sharding.shards[1]=" + long}, []string{"sharding.shards", `"` + long + `"`, "76 characters"}},
		{"kulta", []string{"leaderElection.enabled=false", "replicaCount=1", "sharding.shards[0]=s0"}, nil},
		// "kulta-shard-" and 40 characters and "-metrics": 60.
		{"kulta", []string{"sharding.shards[0]=" + long}, nil},
		// A release name of 50 characters and "-kulta-metrics": 64.
		{strings.Repeat("r", 50), nil, []string{"the release name", "64 characters"}},
		// 49 and "-kulta-metrics": 63.
		{strings.Repeat("r", 49), nil, nil},
	} {
		args := []string{"template", c.release, "charts/kulta", "--kube-version", kubeVersion}
		for _, set := range c.sets {
			args = append(args, "--set", set)
		}
		out, err := helm(t, args...)
		if c.refused == nil {
			if err != nil {
				t.Errorf("%s %v refused: %v", c.release, c.sets, err)
			} else if !strings.Contains(out, "kind: Deployment") {
				t.Errorf("%s %v rendered no Deployment", c.release, c.sets)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s %v accepted", c.release, c.sets)
			continue
		}
		for _, want := range c.refused {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s %v: the error must name %s: %v", c.release, c.sets, want, err)
			}
		}
	}
}

func decode(t *testing.T, manifests string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := testutil.DecodeManifestsFrom(strings.NewReader(manifests))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// TestChartAppliesToAPIServer sends the rendered chart to the real API server: the default
// values and the namespaced watch are created for real; the ServiceMonitor variant, whose CRD
// envtest lacks, is checked for everything but the ServiceMonitor.
func TestChartAppliesToAPIServer(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := context.Background()
	for _, ns := range []string{"kulta-system", "shop", "payments"} {
		err := e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	for _, f := range valuesFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			for _, obj := range decode(t, render(t, f)) {
				if obj.GetKind() == "ServiceMonitor" {
					continue
				}
				if err := e.Client.Create(ctx, obj, client.DryRunAll); err != nil {
					t.Errorf("%s %s: %v", obj.GetKind(), obj.GetName(), err)
				}
			}
		})
	}
}

// TestPodPassesRestrictedPodSecurity creates the controller's Pod (dry run) in a namespace that
// enforces the restricted Pod Security Standard.
func TestPodPassesRestrictedPodSecurity(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "restricted-", Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
	}}}
	g.Expect(e.Client.Create(ctx, ns)).To(Succeed())
	var deploy appsv1.Deployment
	for _, obj := range decode(t, render(t, valuesFiles(t)[0])) {
		if obj.GetKind() == "Deployment" {
			data, err := obj.MarshalJSON()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(yaml.Unmarshal(data, &deploy)).To(Succeed())
		}
	}
	g.Expect(deploy.Name).NotTo(BeEmpty())
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "kulta"}, Spec: deploy.Spec.Template.Spec}
	pod.Spec.ServiceAccountName = ""
	err := e.Client.Create(ctx, pod, client.DryRunAll)
	g.Expect(err).NotTo(HaveOccurred(), "restricted Pod Security")

	insecure := pod.DeepCopy()
	insecure.Spec.Containers[0].SecurityContext.Capabilities = nil
	g.Expect(e.Client.Create(ctx, insecure, client.DryRunAll)).NotTo(Succeed(), "the check must be able to fail")
}

// TestRBACMatchesMarkers compares the chart's rules, with the default values, with the RBAC
// markers of the reconciler and of the provider enabled by default, Gateway API, rendered by
// controller-gen: the chart grants exactly what the code says it uses.
func TestRBACMatchesMarkers(t *testing.T) {
	provider, _ := gatewayAPIRules(t)
	marked := append(markedRules(t, "./internal/controller/..."), provider...)
	chart := clusterRole(t, decode(t, render(t, valuesFiles(t)[0])), "kulta")
	if chart == nil {
		t.Fatal("no ClusterRole kulta")
	}
	if got, want := permissions(chart.Rules), permissions(marked); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("chart ClusterRole grants\n%s\nbut the code's markers ask for\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// clusterRole is the ClusterRole called name among objs, nil when there is none.
func clusterRole(t *testing.T, objs []*unstructured.Unstructured, name string) *rbacv1.ClusterRole {
	t.Helper()
	for _, obj := range objs {
		if obj.GetKind() != "ClusterRole" || obj.GetName() != name {
			continue
		}
		js, err := obj.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var role rbacv1.ClusterRole
		if err := yaml.Unmarshal(js, &role); err != nil {
			t.Fatal(err)
		}
		return &role
	}
	return nil
}

// hasObject reports whether objs hold an object of kind called name.
func hasObject(objs []*unstructured.Unstructured, kind, name string) bool {
	return slices.ContainsFunc(objs, func(obj *unstructured.Unstructured) bool {
		return obj.GetKind() == kind && obj.GetName() == name
	})
}

// gatewayAPIRules splits the RBAC markers of providers/gatewayapi into the provider's rules,
// which the chart puts in the controller's (Cluster)Role, and Detect's reading of the route
// CRDs, which it puts in a ClusterRole of its own.
func gatewayAPIRules(t *testing.T) (provider, crdReader []rbacv1.PolicyRule) {
	t.Helper()
	for _, r := range markedRules(t, "./providers/gatewayapi/...") {
		if len(r.ResourceNames) > 0 || slices.Contains(r.APIGroups, "apiextensions.k8s.io") {
			crdReader = append(crdReader, r)
		} else {
			provider = append(provider, r)
		}
	}
	if len(provider) == 0 || len(crdReader) == 0 {
		t.Fatalf("providers/gatewayapi marks provider rules %v and CRD-read rules %v, want both", provider, crdReader)
	}
	return provider, crdReader
}

// markedRules renders the RBAC markers of the packages under path with controller-gen.
func markedRules(t *testing.T, path string) []rbacv1.PolicyRule {
	t.Helper()
	dir := t.TempDir()
	gen := filepath.Join(root(t), ".cache", "bin", "controller-gen-v0.23.0")
	cmd := exec.Command(gen, "rbac:roleName=kulta", "paths="+path, "output:rbac:dir="+dir)
	cmd.Dir = root(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("controller-gen rbac (run `make generate` first): %v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var marked rbacv1.ClusterRole
	if err := yaml.Unmarshal(data, &marked); err != nil {
		t.Fatal(err)
	}
	return marked.Rules
}

// TestProviderRBACFollowsValues checks that the chart grants a provider's permissions (its
// package's RBAC markers) exactly when the provider is enabled, and that the controller runs
// exactly the enabled providers, in the order kulta.trafficProviders lists them.
func TestProviderRBACFollowsValues(t *testing.T) {
	controller := markedRules(t, "./internal/controller/...")
	gatewayAPI, _ := gatewayAPIRules(t)
	providers := []struct {
		name  string
		rules []rbacv1.PolicyRule
	}{
		{"gatewayAPI", gatewayAPI},
		{"istio", markedRules(t, "./providers/istio/...")},
		{"nginx", markedRules(t, "./providers/nginx/...")},
	}
	for _, p := range providers {
		if len(p.rules) == 0 {
			t.Fatalf("providers/%s has no RBAC marker", strings.ToLower(p.name))
		}
	}
	// Every combination of the three, as a bit mask over providers.
	for mask := range 1 << len(providers) {
		var sets, enabled []string
		want := slices.Clone(controller)
		for i, p := range providers {
			on := mask&(1<<i) != 0
			sets = append(sets, fmt.Sprintf("providers.%s.enabled=%t", p.name, on))
			if on {
				enabled = append(enabled, p.name)
				want = append(want, p.rules...)
			}
		}
		name := "none"
		if len(enabled) > 0 {
			name = strings.Join(enabled, "+")
		}
		t.Run(name, func(t *testing.T) {
			objs := decode(t, render(t, valuesFiles(t)[0], "--set", strings.Join(sets, ",")))
			chart := clusterRole(t, objs, "kulta")
			if chart == nil {
				t.Fatal("no ClusterRole kulta")
			}
			if got, want := permissions(chart.Rules), permissions(want); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("chart grants\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			var args []string
			for _, obj := range objs {
				if obj.GetKind() != "Deployment" {
					continue
				}
				containers, _, _ := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
				for _, c := range containers {
					list, _, _ := unstructured.NestedStringSlice(c.(map[string]any), "args")
					args = append(args, list...)
				}
			}
			wantArg := "--traffic-providers=" + strings.Join(enabled, ",")
			if !slices.Contains(args, wantArg) {
				t.Errorf("controller args %v, want %s", args, wantArg)
			}
		})
	}
}

// TestGatewayAPICRDReaderMatchesMarkers compares the chart's ClusterRole for reading the Gateway
// API route CRDs with the RBAC marker of providers/gatewayapi's Detect, rendered by
// controller-gen, resource names included, for every values file: CRDs are cluster-scoped, so
// the namespaced installation needs it too. With providers.gatewayAPI.enabled=false neither the
// ClusterRole nor its binding is rendered.
func TestGatewayAPICRDReaderMatchesMarkers(t *testing.T) {
	const name = "kulta-gateway-api-crds"
	_, crdReader := gatewayAPIRules(t)
	want := namedPermissions(crdReader)
	for _, f := range valuesFiles(t) {
		objs := decode(t, render(t, f))
		chart := clusterRole(t, objs, name)
		if chart == nil {
			t.Errorf("%s: no ClusterRole %s", filepath.Base(f), name)
		} else if got := namedPermissions(chart.Rules); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: ClusterRole %s grants\n%s\nbut the marker asks for\n%s", filepath.Base(f), name, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if !hasObject(objs, "ClusterRoleBinding", name) {
			t.Errorf("%s: no ClusterRoleBinding %s", filepath.Base(f), name)
		}

		disabled := decode(t, render(t, f, "--set", "providers.gatewayAPI.enabled=false"))
		for _, kind := range []string{"ClusterRole", "ClusterRoleBinding"} {
			if hasObject(disabled, kind, name) {
				t.Errorf("%s with providers.gatewayAPI.enabled=false: %s %s is rendered", filepath.Base(f), kind, name)
			}
		}
	}
}

// namedPermissions is permissions with each resource name spelled out.
func namedPermissions(rules []rbacv1.PolicyRule) []string {
	var out []string
	for _, r := range rules {
		for _, p := range permissions([]rbacv1.PolicyRule{r}) {
			for _, name := range r.ResourceNames {
				out = append(out, p+"/"+name)
			}
			if len(r.ResourceNames) == 0 {
				out = append(out, p)
			}
		}
	}
	sort.Strings(out)
	return out
}

func permissions(rules []rbacv1.PolicyRule) []string {
	var out []string
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					out = append(out, g+"/"+res+":"+v)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestShardsGetTheirOwnDeployments renders the sharded values: one Deployment per shard with
// --shard-key, the main one with --watch-label-selector=!kulta.io/shard, no Deployment or PDB
// selecting another's Pods, a metrics Service per Deployment selecting exactly its Pods, and a
// ServiceMonitor that finds every metrics Service.
func TestShardsGetTheirOwnDeployments(t *testing.T) {
	objs := decode(t, render(t, filepath.Join(root(t), "charts", "kulta", "ci", "sharded-values.yaml")))
	var deployments []appsv1.Deployment
	var selectors []labels.Selector // of the Services and PDBs
	var kinds []string
	var monitor labels.Selector
	var serviceLabels []labels.Set // of the Services, nil for the PDBs: in step with selectors
	for _, obj := range objs {
		data, err := obj.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		switch obj.GetKind() {
		case "Deployment":
			var d appsv1.Deployment
			if err := yaml.Unmarshal(data, &d); err != nil {
				t.Fatal(err)
			}
			deployments = append(deployments, d)
		case "Service":
			var svc corev1.Service
			if err := yaml.Unmarshal(data, &svc); err != nil {
				t.Fatal(err)
			}
			selectors = append(selectors, labels.SelectorFromSet(svc.Spec.Selector))
			kinds = append(kinds, "Service "+svc.Name)
			serviceLabels = append(serviceLabels, svc.Labels)
		case "PodDisruptionBudget":
			var pdb policyv1.PodDisruptionBudget
			if err := yaml.Unmarshal(data, &pdb); err != nil {
				t.Fatal(err)
			}
			sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
			if err != nil {
				t.Fatal(err)
			}
			selectors = append(selectors, sel)
			kinds = append(kinds, "PodDisruptionBudget "+pdb.Name)
			serviceLabels = append(serviceLabels, nil)
		case "ServiceMonitor":
			matchLabels, _, _ := unstructured.NestedStringMap(obj.Object, "spec", "selector", "matchLabels")
			monitor = labels.SelectorFromSet(matchLabels)
		}
	}
	want := map[string]string{"kulta": "--watch-label-selector=!kulta.io/shard",
		"kulta-shard-alpha": "--shard-key=alpha", "kulta-shard-beta": "--shard-key=beta", "kulta-shard-gamma": "--shard-key=gamma"}
	if len(deployments) != len(want) {
		t.Fatalf("%d Deployments, want %d", len(deployments), len(want))
	}
	for _, d := range deployments {
		flag, ok := want[d.Name]
		if !ok {
			t.Errorf("unexpected Deployment %s", d.Name)
			continue
		}
		args := d.Spec.Template.Spec.Containers[0].Args
		if !slices.Contains(args, flag) || slices.ContainsFunc(args, func(a string) bool {
			return a != flag && (strings.HasPrefix(a, "--shard-key") || strings.HasPrefix(a, "--watch-label-selector"))
		}) {
			t.Errorf("Deployment %s args %v, want %s alone of the sharding flags", d.Name, args, flag)
		}
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		for _, other := range deployments {
			pods := labels.Set(other.Spec.Template.Labels)
			if matches := sel.Matches(pods); matches != (other.Name == d.Name) {
				t.Errorf("Deployment %s selects the Pods of %s: %v", d.Name, other.Name, matches)
			}
		}
		// Each metrics Service and PDB selects the Pods of one Deployment at most, and every
		// Deployment has its metrics Service and its PDB.
		var services, pdbs int
		for i, s := range selectors {
			if !s.Matches(labels.Set(d.Spec.Template.Labels)) {
				continue
			}
			if strings.HasPrefix(kinds[i], "Service ") {
				services++
				if monitor == nil || !monitor.Matches(serviceLabels[i]) {
					t.Errorf("the ServiceMonitor does not select %s", kinds[i])
				}
			} else {
				pdbs++
			}
		}
		if services != 1 || pdbs != 1 {
			t.Errorf("Deployment %s: %d metrics Services and %d PDBs select its Pods, want 1 and 1", d.Name, services, pdbs)
		}
	}
	for i, s := range selectors {
		n := 0
		for _, d := range deployments {
			if s.Matches(labels.Set(d.Spec.Template.Labels)) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s selects the Pods of %d Deployments, want 1", kinds[i], n)
		}
	}
}

// TestWebhookSecretsRBAC checks that reading Secrets is granted only by name and only for the
// names webhooks.secretNames lists: what internal/webhook's RBAC marker asks (get on secrets),
// in a ClusterRole of its own for a cluster-wide installation and a Role in each watched
// namespace otherwise; with no names, no object anywhere grants access to a Secret.
func TestWebhookSecretsRBAC(t *testing.T) {
	const name = "kulta-webhook-secrets"
	marked := permissions(markedRules(t, "./internal/webhook/..."))
	if strings.Join(marked, ",") != "/secrets:get" {
		t.Fatalf("internal/webhook marks %v, want get on secrets only", marked)
	}
	roleRules := func(objs []*unstructured.Unstructured, kind string) map[string][]rbacv1.PolicyRule {
		out := map[string][]rbacv1.PolicyRule{}
		for _, obj := range objs {
			if obj.GetKind() != kind {
				continue
			}
			js, err := obj.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			var role rbacv1.Role
			if err := yaml.Unmarshal(js, &role); err != nil {
				t.Fatal(err)
			}
			out[obj.GetNamespace()+"/"+obj.GetName()] = role.Rules
		}
		return out
	}
	granting := func(objs []*unstructured.Unstructured) []string {
		var out []string
		for _, kind := range []string{"ClusterRole", "Role"} {
			for key, rules := range roleRules(objs, kind) {
				for _, p := range namedPermissions(rules) {
					if strings.HasPrefix(p, "/secrets:") {
						out = append(out, kind+" "+key+" "+p)
					}
				}
			}
		}
		sort.Strings(out)
		return out
	}
	defaults := filepath.Join(root(t), "charts", "kulta", "ci", "default-values.yaml")
	if got := granting(decode(t, render(t, defaults))); len(got) != 0 {
		t.Errorf("default values grant Secrets: %v", got)
	}
	cluster := decode(t, render(t, defaults, "--set", "webhooks.secretNames={hooks,tokens}"))
	want := []string{"ClusterRole /" + name + " /secrets:get/hooks", "ClusterRole /" + name + " /secrets:get/tokens"}
	if got := granting(cluster); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("cluster-wide: Secrets granted\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !hasObject(cluster, "ClusterRoleBinding", name) {
		t.Errorf("cluster-wide: no ClusterRoleBinding %s", name)
	}
	namespaced := decode(t, render(t, defaults, "--set", "webhooks.secretNames={hooks}", "--set", "watchNamespaces={shop,payments}"))
	want = []string{"Role payments/" + name + " /secrets:get/hooks", "Role shop/" + name + " /secrets:get/hooks"}
	if got := granting(namespaced); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("namespaced: Secrets granted\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestNotificationsConfigLoads renders the monitoring values' notification services and loads
// the ConfigMap the chart writes with the controller's own loader, the Secret's files in a
// temporary directory where the chart mounts them; the Pods mount both and name the file.
func TestNotificationsConfigLoads(t *testing.T) {
	objs := decode(t, render(t, filepath.Join(root(t), "charts", "kulta", "ci", "monitoring-values.yaml")))
	var config string
	for _, obj := range objs {
		if obj.GetKind() == "ConfigMap" && obj.GetName() == "kulta-notifications" {
			data, _, err := unstructured.NestedStringMap(obj.Object, "data")
			if err != nil {
				t.Fatal(err)
			}
			config = data["config.yaml"]
		}
	}
	if config == "" {
		t.Fatal("no ConfigMap kulta-notifications with config.yaml")
	}
	dir := t.TempDir()
	for key, value := range map[string]string{"slack-url": "https://hooks.slack.com/services/T/B/X", "teams-url": "https://example.webhook.office.com/w", "audit-token": "t0ken"} {
		if err := os.WriteFile(filepath.Join(dir, key), []byte(value), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(config, "/etc/kulta/notification-secrets", dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := notify.LoadConfig(path)
	if err != nil {
		t.Fatalf("the controller refuses the chart's notifications config: %v\n%s", err, config)
	}
	if len(cfg.Services) != 3 {
		t.Errorf("%d services loaded, want 3", len(cfg.Services))
	}
	manifests := render(t, filepath.Join(root(t), "charts", "kulta", "ci", "monitoring-values.yaml"))
	for _, want := range []string{"--notifications-config=/etc/kulta/notifications/config.yaml", "mountPath: /etc/kulta/notification-secrets", "secretName: kulta-notifications"} {
		if !strings.Contains(manifests, want) {
			t.Errorf("the Deployment lacks %q", want)
		}
	}
	if _, err := helm(t, "template", "kulta", "charts/kulta", "--set", "notifications.services[0].name=s", "--set", "notifications.services[0].type=slack",
		"--set", "notifications.services[0].urlKey=u"); err == nil || !strings.Contains(err.Error(), "need notifications.secretName") {
		t.Errorf("urlKey without secretName: want the chart to refuse naming the field, got %v", err)
	}
}
