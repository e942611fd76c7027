package cdevents

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	sentTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kulta_cdevents_sent_total",
		Help: "CDEvents the sink acknowledged, by CDEvent type.",
	}, []string{"type"})

	failedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kulta_cdevents_failed_total",
		Help: "CDEvents given up: invalid, rejected, still failing after the last retry, or unsent at shutdown, by CDEvent type.",
	}, []string{"type"})

	droppedTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kulta_cdevents_dropped_total",
		Help: "Transitions dropped without an attempt because the CDEvents queue was full or the sender had stopped.",
	})
)

func init() {
	ctrlmetrics.Registry.MustRegister(sentTotal, failedTotal, droppedTotal)
}
