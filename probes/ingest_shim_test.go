package probes

import (
	"github.com/hashicorp/go-hclog"

	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/ingest"
	"github.com/aagtm/aagtm/policy"
)

// The node-side ingest lives in package ingest; the agent's tests run it
// as their peer under the names they have always used (helpers_test.go's
// startIngest).

// Ingest is the node side the agent reports to.
type Ingest = ingest.Ingest

// IngestOption configures NewIngest.
type IngestOption = ingest.Option

// NewIngest is ingest.New.
func NewIngest(cfg *config.Config, logger hclog.Logger, sink func([]policy.Observation), opts ...IngestOption) *Ingest {
	return ingest.New(cfg, logger, sink, opts...)
}

// Options of the ingest used by the agent's tests.
var (
	WithNodeName   = ingest.WithNodeName
	WithRegisterer = ingest.WithRegisterer
)
