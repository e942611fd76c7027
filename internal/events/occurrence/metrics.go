package occurrence

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	writtenTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kulta_occurrences_written_total",
		Help: "FALSE Protocol occurrences written, by occurrence type.",
	}, []string{"type"})

	writeErrorsTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kulta_occurrence_write_errors_total",
		Help: "FALSE Protocol occurrences that could not be built or written.",
	})
)

func init() {
	ctrlmetrics.Registry.MustRegister(writtenTotal, writeErrorsTotal)
}
