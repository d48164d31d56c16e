package promreg

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestRegister: a second collector of the same name is replaced by the
// first (so both servers count into one series); a conflicting one panics.
func TestRegister(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "aagtm_test_total", Help: "Test."}
	first := Register(reg, prometheus.NewCounter(opts))
	second := Register(reg, prometheus.NewCounter(opts))
	if first != second {
		t.Fatal("second registration did not return the registered collector")
	}
	second.Inc()
	if got := counterValue(t, reg); got != 1 {
		t.Errorf("shared counter = %v, want 1", got)
	}

	tests := []struct {
		name    string
		collect prometheus.Collector
	}{
		{"other help", prometheus.NewCounter(prometheus.CounterOpts{Name: "aagtm_test_total", Help: "Other."})},
		{"other labels", prometheus.NewCounterVec(opts, []string{"kind"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("conflicting registration did not panic")
				}
			}()
			Register(reg, tt.collect)
		})
	}
}

// counterValue reads the value of the one counter reg holds.
func counterValue(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("gather: %v, %d families", err, len(mfs))
	}
	return mfs[0].GetMetric()[0].GetCounter().GetValue()
}
