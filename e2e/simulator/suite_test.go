package simulator

import (
	"context"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/false-systems/kulta/internal/testenv"
)

// env is the API server of the tests that read a real cluster; nil under -short.
var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

// TestEndpointsReadOneMoment re-selects a Service on a real API server between the tick's read
// of the Pods and its read of the Services: the tick still sees the selector the Service had
// when the Pods were read, so Pods and Services are judged as they stood together.
func TestEndpointsReadOneMoment(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := t.Context()
	ns := e.CreateNamespace(t, "endpoints")
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"rev": "old"}, Ports: []corev1.ServicePort{{Port: 80}}},
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-old", Labels: map[string]string{"rev": "old"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "web:1"}}},
	}
	for _, obj := range []client.Object{svc, pod} {
		if err := e.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	watching, err := client.NewWithWatch(e.Config, client.Options{Scheme: e.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	repinned := false
	c := interceptor.NewClient(watching, interceptor.Funcs{
		List: func(ctx context.Context, cl client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			if err := cl.List(ctx, list, opts...); err != nil {
				return err
			}
			if _, pods := list.(*corev1.PodList); pods && !repinned {
				repinned = true
				before := svc.DeepCopy()
				svc.Spec.Selector = map[string]string{"rev": "new"}
				return e.Client.Patch(ctx, svc, client.MergeFrom(before))
			}
			return nil
		},
	})
	s := &Simulator{client: c}
	pods, services, err := s.endpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !repinned {
		t.Fatal("the Service was not re-selected between the reads")
	}
	got := services[ServiceKey{Namespace: ns, Name: "web"}]
	if got == nil {
		t.Fatalf("Service %s/web not among the Services read", ns)
	}
	if got.Spec.Selector["rev"] != "old" {
		t.Errorf("the tick read Service %s/web selecting %v, want the selector it had when the Pods were read, rev=old", ns, got.Spec.Selector)
	}
	found := false
	for _, p := range pods {
		found = found || (p.Namespace == ns && p.Name == pod.Name)
	}
	if !found {
		t.Errorf("Pod %s/%s not among the Pods read", ns, pod.Name)
	}
}
