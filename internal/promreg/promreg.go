// Package promreg registers Prometheus collectors so that several servers
// of one kind may share a registry (tests, two listeners in one process).
// It defines no metrics of its own.
package promreg

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c with reg and returns it, or returns the collector
// already registered in its place (same name, help and labels, of the
// same type), which the caller then shares. Any other conflict panics,
// like prometheus.MustRegister: two of our collectors disagreeing on a
// name is a programming error.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	panic(fmt.Sprintf("register metric: %v", err))
}
