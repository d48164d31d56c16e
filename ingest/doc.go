// Package ingest is the node side of the report channel: a gRPC
// ReportService that authenticates each probe agent (per-agent bearer token
// or client certificate), validates and sequences its reports (boot id and
// seq), and hands the resulting policy.Observations to a sink.
//
// It decides nothing about health (that is package policy) and probes
// nothing (that is package probes, the agent). See README.md for the
// identity rules, sequencing, limits and metrics.
package ingest
