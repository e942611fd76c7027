package cdevents

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// deliver builds, validates and sends one event, retrying failed sends with backoff until the
// receiver acknowledges it, MaxRetries is spent, or ctx ends. Invalid events and rejected ones
// (4xx other than 408 and 429) are not retried.
func (s *Sink) deliver(ctx context.Context, it item) {
	ev, err := buildEvent(it.transition, it.eventType)
	if err != nil {
		s.giveUp(it, err)
		return
	}
	for attempt := 0; ; attempt++ {
		err := s.send(ctx, ev)
		if err == nil {
			s.sent.Add(1)
			sentTotal.WithLabelValues(it.eventType).Inc()
			return
		}
		if !retryable(err) || attempt >= s.opts.MaxRetries {
			s.giveUp(it, fmt.Errorf("after %d attempts: %w", attempt+1, err))
			return
		}
		s.log.V(4).Info("Retrying CDEvent", "type", it.eventType, "id", ev.ID(), "attempt", attempt+1, "error", err.Error())
		if !s.wait(ctx, s.backoff(attempt)) {
			s.giveUp(it, fmt.Errorf("shutting down while retrying: %w", err))
			return
		}
	}
}

func (s *Sink) send(ctx context.Context, ev *cloudevents.Event) error {
	sendCtx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	if result := s.client.Send(sendCtx, *ev); !cloudevents.IsACK(result) {
		return fmt.Errorf("sending %s %s: %w", ev.Type(), ev.ID(), result)
	}
	return nil
}

// retryable says whether a failed send may succeed later: transport errors and timeouts,
// 5xx, 408 and 429 may; other HTTP statuses are the receiver rejecting the event.
func retryable(err error) bool {
	var res *cehttp.Result
	if !errors.As(err, &res) {
		return true
	}
	switch {
	case res.StatusCode >= http.StatusInternalServerError,
		res.StatusCode == http.StatusRequestTimeout,
		res.StatusCode == http.StatusTooManyRequests:
		return true
	default:
		return res.StatusCode < http.StatusBadRequest
	}
}

// backoff is the wait before retry attempt+1: BackoffBase doubled attempt times, capped at
// BackoffMax, then spread over its upper half by Jitter.
func (s *Sink) backoff(attempt int) time.Duration {
	d := s.opts.BackoffMax
	if attempt < 32 {
		if exp := s.opts.BackoffBase << attempt; exp > 0 && exp < d {
			d = exp
		}
	}
	return d/2 + time.Duration(s.opts.Jitter()*float64(d/2))
}

// wait sleeps for d and reports false when ctx ended first.
func (s *Sink) wait(ctx context.Context, d time.Duration) bool {
	timer := s.opts.Clock.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C():
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *Sink) giveUp(it item, err error) {
	s.failed.Add(1)
	failedTotal.WithLabelValues(it.eventType).Inc()
	ro := it.transition.Rollout
	name, namespace := "", ""
	if ro != nil {
		name, namespace = ro.Name, ro.Namespace
	}
	s.log.Error(err, "CDEvent given up", "type", it.eventType, "transition", it.transition.Kind,
		"rollout", name, "namespace", namespace)
}
