package charts_test

import (
	"bytes"
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
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

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
	bin := os.Getenv("KULTA_HELM")
	if bin == "" {
		bin = filepath.Join(root(t), ".cache", "bin", "helm-v3.22.0")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("helm not found at %s: run `make helm-bin` first", bin)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = root(t)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
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

// TestRBACMatchesMarkers compares the chart's rules with the RBAC markers of the reconciler,
// rendered by controller-gen: the chart grants exactly what the code says it uses.
func TestRBACMatchesMarkers(t *testing.T) {
	marked := rbacv1.ClusterRole{Rules: markedRules(t, "./internal/controller/...")}
	var chart rbacv1.ClusterRole
	for _, obj := range decode(t, render(t, valuesFiles(t)[0])) {
		if obj.GetKind() == "ClusterRole" && obj.GetName() == "kulta" {
			js, err := obj.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if err := yaml.Unmarshal(js, &chart); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got, want := permissions(chart.Rules), permissions(marked.Rules); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("chart ClusterRole grants\n%s\nbut the code's markers ask for\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
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
// package's RBAC markers) exactly when the provider is enabled.
func TestProviderRBACFollowsValues(t *testing.T) {
	controller := markedRules(t, "./internal/controller/...")
	extra := append(markedRules(t, "./providers/istio/..."), markedRules(t, "./providers/nginx/...")...)
	for _, enabled := range []bool{false, true} {
		out := render(t, valuesFiles(t)[0], "--set", fmt.Sprintf("providers.nginx.enabled=%t,providers.istio.enabled=%t", enabled, enabled))
		var chart rbacv1.ClusterRole
		var args []string
		for _, obj := range decode(t, out) {
			switch {
			case obj.GetKind() == "ClusterRole" && obj.GetName() == "kulta":
				js, err := obj.MarshalJSON()
				if err != nil {
					t.Fatal(err)
				}
				if err := yaml.Unmarshal(js, &chart); err != nil {
					t.Fatal(err)
				}
			case obj.GetKind() == "Deployment":
				containers, _, _ := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
				for _, c := range containers {
					list, _, _ := unstructured.NestedStringSlice(c.(map[string]any), "args")
					args = append(args, list...)
				}
			}
		}
		want := controller
		flag := "--traffic-providers=gatewayAPI"
		if enabled {
			want = append(slices.Clone(controller), extra...)
			flag += ",istio,nginx"
		}
		if got, want := permissions(chart.Rules), permissions(want); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("istio and nginx enabled=%t: chart grants\n%s\nwant\n%s", enabled, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if !slices.Contains(args, flag) {
			t.Errorf("istio and nginx enabled=%t: controller args %v, want %s", enabled, args, flag)
		}
	}
}

// TestGatewayAPICRDReaderMatchesMarkers compares the chart's ClusterRole for reading the Gateway
// API route CRDs with the RBAC marker of providers/gatewayapi's Detect, rendered by
// controller-gen, resource names included, for every values file: CRDs are cluster-scoped, so
// the namespaced installation needs it too.
func TestGatewayAPICRDReaderMatchesMarkers(t *testing.T) {
	marked := rbacv1.ClusterRole{Rules: markedRules(t, "./providers/gatewayapi/...")}
	want := namedPermissions(marked.Rules)
	if len(want) == 0 {
		t.Fatal("providers/gatewayapi has no RBAC marker")
	}
	for _, f := range valuesFiles(t) {
		var chart *rbacv1.ClusterRole
		for _, obj := range decode(t, render(t, f)) {
			if obj.GetKind() != "ClusterRole" || obj.GetName() != "kulta-gateway-api-crds" {
				continue
			}
			js, err := obj.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			chart = &rbacv1.ClusterRole{}
			if err := yaml.Unmarshal(js, chart); err != nil {
				t.Fatal(err)
			}
		}
		if chart == nil {
			t.Errorf("%s: no ClusterRole kulta-gateway-api-crds", filepath.Base(f))
			continue
		}
		if got := namedPermissions(chart.Rules); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: ClusterRole kulta-gateway-api-crds grants\n%s\nbut the marker asks for\n%s", filepath.Base(f), strings.Join(got, "\n"), strings.Join(want, "\n"))
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
