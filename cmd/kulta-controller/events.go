package main

import (
	"flag"
	"fmt"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/false-systems/kulta/internal/events"
	"github.com/false-systems/kulta/internal/events/cdevents"
	"github.com/false-systems/kulta/internal/events/notify"
	"github.com/false-systems/kulta/internal/events/occurrence"
)

// eventOptions configure where transitions go besides Kubernetes Events.
type eventOptions struct {
	cdeventsEnabled  bool
	cdeventsSinkURL  string
	occurrenceDir    string
	occurrenceStdout bool
	cluster          string
	notifications    string
}

func (e *eventOptions) bind(fs *flag.FlagSet) {
	fs.BoolVar(&e.cdeventsEnabled, "cdevents-enabled", envBool("KULTA_CDEVENTS_ENABLED"), "Send CDEvents for rollout transitions (env KULTA_CDEVENTS_ENABLED).")
	fs.StringVar(&e.cdeventsSinkURL, "cdevents-sink-url", os.Getenv("KULTA_CDEVENTS_SINK_URL"), "CloudEvents HTTP endpoint that receives the CDEvents (env KULTA_CDEVENTS_SINK_URL).")
	fs.StringVar(&e.occurrenceDir, "occurrence-dir", os.Getenv("KULTA_OCCURRENCE_DIR"), "Directory for FALSE Protocol occurrence files (env KULTA_OCCURRENCE_DIR).")
	fs.BoolVar(&e.occurrenceStdout, "occurrence-stdout", false, "Write FALSE Protocol occurrences to standard output.")
	fs.StringVar(&e.cluster, "cluster-name", os.Getenv("KULTA_CLUSTER_NAME"), "Cluster name recorded in occurrences (env KULTA_CLUSTER_NAME).")
	fs.StringVar(&e.notifications, "notifications-config", os.Getenv("KULTA_NOTIFICATIONS_CONFIG"), "File of the notification services (Slack, Teams, webhooks) Rollouts subscribe to with kulta.io/notify (env KULTA_NOTIFICATIONS_CONFIG).")
}

// notifier builds the notification services of --notifications-config, run on the leader;
// nil without the flag.
func (e *eventOptions) notifier(mgr ctrl.Manager) (*notify.Notifier, error) {
	if e.notifications == "" {
		return nil, nil
	}
	cfg, err := notify.LoadConfig(e.notifications)
	if err != nil {
		return nil, err
	}
	n := notify.New(cfg, notify.Options{Logger: ctrl.Log.WithName("notifications")})
	if err := mgr.Add(n); err != nil {
		return nil, fmt.Errorf("adding the notifier: %w", err)
	}
	return n, nil
}

// sinks builds the configured sinks; the CDEvents sender runs as a manager runnable, on the
// leader only, and flushes on shutdown.
func (e *eventOptions) sinks(mgr ctrl.Manager) (events.Sink, error) {
	var out events.Sinks
	if e.cdeventsEnabled {
		if e.cdeventsSinkURL == "" {
			return nil, fmt.Errorf("--cdevents-enabled needs --cdevents-sink-url (or KULTA_CDEVENTS_SINK_URL)")
		}
		sender, err := cdevents.New(cdevents.Options{URL: e.cdeventsSinkURL})
		if err != nil {
			return nil, fmt.Errorf("setting up CDEvents: %w", err)
		}
		if err := mgr.Add(sender); err != nil {
			return nil, fmt.Errorf("adding the CDEvents sender: %w", err)
		}
		out = append(out, sender)
	}
	if e.occurrenceDir != "" || e.occurrenceStdout {
		writer, err := occurrence.New(occurrence.Options{Dir: e.occurrenceDir, Cluster: e.cluster})
		if err != nil {
			return nil, fmt.Errorf("setting up occurrences: %w", err)
		}
		out = append(out, writer)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}
