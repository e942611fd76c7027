// Package providers defines TrafficRouter, the only way KULTA's reconciler moves traffic.
//
// Implementations live in sub-packages (gatewayapi is the reference one) and are chosen by an
// explicit switch in cmd/ wiring. This package holds the interface and its value types only.
package providers
