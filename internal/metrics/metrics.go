package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// TrafficDriftCorrections counts the times KULTA put back route weights that someone else had
// changed.
var TrafficDriftCorrections = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "kulta_traffic_drift_corrections_total",
	Help: "Times KULTA restored route weights changed by someone else, by Rollout.",
}, []string{"namespace", "rollout"})

func init() {
	ctrlmetrics.Registry.MustRegister(TrafficDriftCorrections)
}

// Forget removes a deleted Rollout's series.
func Forget(namespace, rollout string) {
	TrafficDriftCorrections.DeleteLabelValues(namespace, rollout)
}
