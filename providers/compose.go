package providers

import (
	"context"
	"errors"
	"fmt"
	"strings"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// ReasonProviderNotEnabled: a Rollout's trafficRouting names a provider the controller does not
// run (disabled, or its CRDs are not installed).
const ReasonProviderNotEnabled = "ProviderNotEnabled"

// Compose is a TrafficRouter over every registered provider: each call goes to the providers a
// Rollout's trafficRouting names, in registration order. A step is applied to all of them; the
// routes verify only when all of them carry the same weights and all accept them.
func Compose(all []Provider) TrafficRouter {
	return composed(all)
}

type composed []Provider

var _ TrafficRouter = composed(nil)

// using returns the providers ro asks for, or a RouteError naming one it asks for that is not
// registered.
func (c composed) using(ro *kultav1alpha1.Rollout) ([]Provider, error) {
	tr := ro.Spec.Strategy.TrafficRouting()
	registered := map[string]bool{}
	for _, p := range c {
		registered[p.Name] = true
	}
	for _, name := range tr.Providers() {
		if !registered[name] {
			return nil, &RouteError{Reason: ReasonProviderNotEnabled, Message: fmt.Sprintf(
				"Rollout %s/%s sets trafficRouting.%s, but the controller runs without the %s provider (disabled, or its CRDs were not installed when it started)",
				ro.Namespace, ro.Name, name, name)}
		}
	}
	return Using(c, tr), nil
}

// each calls fn for every provider ro uses, stopping at the first error, which it wraps with
// the provider's name.
func (c composed) each(ro *kultav1alpha1.Rollout, fn func(Provider) error) error {
	ps, err := c.using(ro)
	if err != nil {
		return err
	}
	for _, p := range ps {
		if err := fn(p); err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
	}
	return nil
}

// eachEven calls fn for every provider ro uses, each even when one before it failed, and joins
// the errors, each wrapped with its provider's name.
func (c composed) eachEven(ro *kultav1alpha1.Rollout, fn func(Provider) error) error {
	ps, err := c.using(ro)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range ps {
		if err := fn(p); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.Name, err))
		}
	}
	return errors.Join(errs...)
}

// SetWeights sets w on every provider ro uses. Weights that send the canary something stop at
// the first provider that fails, so that no provider moves further ahead of one that could not
// follow. Weights that send the canary nothing (a rollback, an abort, the end of a rollout) are
// applied to every provider even when one fails, so that none is left with canary traffic the
// others have already taken away.
func (c composed) SetWeights(ctx context.Context, ro *kultav1alpha1.Rollout, w Weights) error {
	apply := func(p Provider) error { return p.Router.SetWeights(ctx, ro, w) }
	if w.Canary == 0 {
		return c.eachEven(ro, apply)
	}
	return c.each(ro, apply)
}

// SetHeaderRoute adds or updates hr on every provider ro uses.
func (c composed) SetHeaderRoute(ctx context.Context, ro *kultav1alpha1.Rollout, hr HeaderRoute) error {
	return c.each(ro, func(p Provider) error { return p.Router.SetHeaderRoute(ctx, ro, hr) })
}

// RemoveHeaderRoute removes the managed rule name from every provider ro uses, each even when
// another failed: like weights that take the canary's traffic away, a removal is never held
// back by one provider.
func (c composed) RemoveHeaderRoute(ctx context.Context, ro *kultav1alpha1.Rollout, name string) error {
	return c.eachEven(ro, func(p Provider) error { return p.Router.RemoveHeaderRoute(ctx, ro, name) })
}

// Verify asks every provider ro uses. The weights are the ones all of them carry (nil when one
// differs); the routes are accepted when every provider's are, and the message names the
// providers whose are not.
func (c composed) Verify(ctx context.Context, ro *kultav1alpha1.Rollout) (Verification, error) {
	out := Verification{Accepted: true, Pending: true}
	var pending []string
	first := true
	err := c.each(ro, func(p Provider) error {
		v, err := p.Router.Verify(ctx, ro)
		if err != nil {
			return err
		}
		switch {
		case first:
			out.Weights = v.Weights
		case out.Weights == nil || v.Weights == nil || *out.Weights != *v.Weights:
			out.Weights = nil
		}
		first = false
		if !v.Accepted {
			out.Accepted = false
			out.Pending = out.Pending && v.Pending
			pending = append(pending, p.Name+": "+v.Message)
		}
		return nil
	})
	if err != nil {
		return Verification{}, err
	}
	out.Message = strings.Join(pending, "; ")
	out.Pending = out.Pending && !out.Accepted
	return out, nil
}

// Cleanup hands traffic back on every provider ro uses, each even when another failed. An error
// that only says objects can no longer be used is returned only when nothing else failed.
func (c composed) Cleanup(ctx context.Context, ro *kultav1alpha1.Rollout) error {
	ps, err := c.using(ro)
	if err != nil {
		// A provider that is not running has nothing of KULTA's to clean up; do the others.
		ps = Using(c, ro.Spec.Strategy.TrafficRouting())
	}
	var failed, unusable []error
	for _, p := range ps {
		err := p.Router.Cleanup(ctx, ro)
		switch {
		case errors.Is(err, ErrRouteNotUsable):
			unusable = append(unusable, fmt.Errorf("%s: %w", p.Name, err))
		case err != nil:
			failed = append(failed, fmt.Errorf("%s: %w", p.Name, err))
		}
	}
	if len(failed) > 0 {
		return errors.Join(failed...)
	}
	return errors.Join(unusable...)
}
