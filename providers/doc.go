// Package providers defines TrafficRouter, the only way KULTA's reconciler moves traffic.
//
// Implementations live in sub-packages (gatewayapi is the reference one) and are chosen by an
// explicit switch in cmd/ wiring. This package holds the interface, its value types and errors,
// and the names of the rules KULTA manages; it talks to no API.
package providers
