// Package probes is aagtm's probe agent: it checks every member of every
// database from its region and streams reports to the GTM nodes.
//
// The agent (NewAgent, Agent.Run) runs the configured checks (ping, echo,
// keyspace, lag, rest, command) against every member each probe interval,
// concurrently and each member bounded by the probe timeout, and sends one
// report per round to every node over a long-lived gRPC stream (package
// api), authenticated by its own token or certificate, reconnecting with
// backoff and keeping only the latest report while a node is unreachable.
//
// The package decides nothing: it measures and transports. The node side
// of the channel is package ingest; verdicts (rise/fall, quorum, lag
// tolerance) belong to package policy, which this package does not import.
// See README.md for the checks, the settings they read and the protocol.
package probes
