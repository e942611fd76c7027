//go:build e2e

package scenarios

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/convert"
)

// argoManifest is a team's Argo Rollouts canary as Argo documents it: Services, an HTTPRoute
// for the Gateway API plugin, an AnalysisTemplate judging the canary's 5xx ratio in Prometheus,
// and the Rollout whose analysis step names it. %[1]s is the namespace, %[2]s Prometheus.
const argoManifest = `apiVersion: v1
kind: Service
metadata:
  name: web-stable
  namespace: %[1]s
spec:
  selector:
    app: web
  ports:
    - name: http
      port: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web-canary
  namespace: %[1]s
spec:
  selector:
    app: web
  ports:
    - name: http
      port: 80
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
  namespace: %[1]s
spec:
  parentRefs:
    - name: kulta-gateway
      namespace: default
  rules:
    - backendRefs:
        - name: web-stable
          port: 80
          weight: 100
        - name: web-canary
          port: 80
          weight: 0
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: error-ratio
  namespace: %[1]s
spec:
  args:
    - name: service
    - name: namespace
  metrics:
    - name: error-ratio
      interval: 5s
      successCondition: result[0] < 0.05
      failureLimit: 0
      provider:
        prometheus:
          address: %[2]s
          query: |
            sum(rate(http_requests_total{namespace="{{args.namespace}}",service="{{args.service}}",code="500"}[30s]))
            /
            sum(rate(http_requests_total{namespace="{{args.namespace}}",service="{{args.service}}"}[30s]))
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: web
  namespace: %[1]s
spec:
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
        - name: app
          image: ` + goodImage + `
          ports:
            - containerPort: 80
  strategy:
    canary:
      canaryService: web-canary
      stableService: web-stable
      trafficRouting:
        plugins:
          argoproj-labs/gatewayAPI:
            httpRoute: web
            namespace: %[1]s
      steps:
        - setWeight: 20
        - pause: {duration: 5}
        - analysis:
            templates:
              - templateName: error-ratio
            args:
              - name: service
                value: web-canary
              - name: namespace
                value: %[1]s
        - setWeight: 50
        - pause: {duration: 5s}
`

// argoCanaryConverted converts argoManifest with kubectl kulta convert's code, with no
// warning, applies the output to the cluster as a team would, and updates the image: the
// canary goes through its steps, the analysis step passes on the Prometheus query from the
// AnalysisTemplate, and the new revision completes.
func argoCanaryConverted(ctx context.Context, t *testing.T, w *world) {
	ns := w.newNamespace(ctx, t, "argo")
	applyConverted(ctx, t, w, fmt.Sprintf(argoManifest, ns, w.prometheus.Address()))
	a := &app{w: w, namespace: ns, name: "web", services: []string{"web-stable", "web-canary"}}
	ro := a.waitCompleted(ctx, t, "", 90*time.Second)
	stable := ro.Status.StablePodTemplateHash
	a.setImage(ctx, t, betterImage)
	ro = a.waitCompleted(ctx, t, stable, 3*time.Minute)
	for _, d := range ro.Status.Decisions {
		if d.Reason == "AnalysisPassed" && ptr.Deref(d.FromStep, -1) == 2 {
			return
		}
	}
	t.Errorf("no AnalysisPassed decision for step 2, the converted analysis step: %+v", ro.Status.Decisions)
}

// flaggerManifest is a team's Flagger canary on Gateway API, as Flagger documents it: the
// target Deployment and the Canary, whose Services and route Flagger would generate. %[1]s is
// the namespace.
const flaggerManifest = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
  namespace: %[1]s
spec:
  replicas: 3
  selector:
    matchLabels:
      app: podinfo
  template:
    metadata:
      labels:
        app: podinfo
    spec:
      containers:
        - name: app
          image: ` + goodImage + `
          ports:
            - name: http
              containerPort: 80
---
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: %[1]s
spec:
  provider: gatewayapi:v1
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  service:
    port: 80
    targetPort: 80
    gatewayRefs:
      - name: kulta-gateway
        namespace: default
  analysis:
    interval: 5s
    threshold: 2
    maxWeight: 50
    stepWeight: 25
    metrics:
      - name: request-success-rate
        thresholdRange:
          min: 95
        interval: 5s
`

// flaggerCanaryConverted converts flaggerManifest with no warning and applies the output: the
// Rollout adopts the Deployment, the generated Services and HTTPRoute carry the traffic, and the
// team's next edit of the Deployment goes out as a canary at 25 %, then 50 %, judged by the
// success rate, and completes.
func flaggerCanaryConverted(ctx context.Context, t *testing.T, w *world) {
	ns := w.newNamespace(ctx, t, "flagger")
	applyConverted(ctx, t, w, fmt.Sprintf(flaggerManifest, ns))
	a := &app{w: w, namespace: ns, name: "podinfo", services: []string{"podinfo", "podinfo-canary"}}
	ro := a.waitCompleted(ctx, t, "", 90*time.Second)
	stable := ro.Status.StablePodTemplateHash
	watch := a.watchWeights(ctx, t)
	d, err := a.deployment(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := d.DeepCopy()
	d.Spec.Template.Spec.Containers[0].Image = betterImage
	if err := w.client.Patch(ctx, d, client.MergeFrom(before)); err != nil {
		t.Fatalf("updating Deployment %s/podinfo: %v", ns, err)
	}
	ro = a.waitCompleted(ctx, t, stable, 3*time.Minute)
	a.expectRouteHistory(ctx, t, watch, "100/0", "75/25", "50/50", "100/0")
	if ro.Status.Analysis == nil || ro.Status.Analysis.Verdict != kultav1alpha1.VerdictPass {
		t.Errorf("the converted success rate did not judge the canary: analysis %+v", ro.Status.Analysis)
	}
}

// applyConverted converts manifest with kubectl kulta convert's code, expecting no warning, and
// creates every object of the output, as a team applying it would.
func applyConverted(ctx context.Context, t *testing.T, w *world, manifest string) {
	t.Helper()
	res, err := convert.Convert([]convert.Input{{Name: "manifest.yaml", Data: []byte(manifest)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, warning := range res.Warnings {
		t.Errorf("warning: %s", warning)
	}
	for _, doc := range strings.Split(string(res.Outputs[0].Data), "\n---\n") {
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
			t.Fatalf("converted output is not YAML: %v\n%s", err, doc)
		}
		create(ctx, t, w.client, obj)
	}
}
