package notify

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	// deliveries counts notifications by service, service type and result: delivered, retried
	// (an attempt that failed and is tried again), failed (given up), deferred (its queue was
	// full: sent after a later reconcile), unknown-service (a Rollout names a service that is not
	// configured). Never labelled by URL.
	deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kulta_notifications_total",
		Help: "Notifications by service, service type and result (delivered, retried, failed, deferred, unknown-service).",
	}, []string{"service", "type", "result"})

	// deliverySeconds observes how long each delivery attempt takes.
	deliverySeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "kulta_notification_delivery_seconds",
		Help:    "Time one attempt to deliver a notification takes, by service.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
	}, []string{"service"})
)

func init() {
	ctrlmetrics.Registry.MustRegister(deliveries, deliverySeconds)
}
