// Package probes is aagtm's health-probe layer: the probe agent that checks
// every member of every database from its region and streams reports to the
// GTM nodes, and the node-side ingest that authenticates those reports and
// turns them into policy.Observations.
//
// The agent (NewAgent, Agent.Run) runs the configured checks (ping, echo,
// keyspace, lag, rest, command) against every member each probe interval,
// concurrently and each member bounded by the probe timeout, and sends one
// report per round to every node over a long-lived gRPC stream (package
// api), reconnecting with backoff and keeping only the latest report while a
// node is unreachable. The ingest (NewIngest, Ingest.Serve) checks the
// agent's identity (mTLS certificate or bearer token), its region and the
// members it reports on, and hands the observations to a sink.
//
// The package decides nothing: it measures and transports. Verdicts
// (rise/fall, quorum, lag tolerance) belong to package policy. See README.md
// for the checks, the settings they read and the protocol.
package probes
