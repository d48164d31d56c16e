// Package admin is a GTM node's operator surface: the admin HTTP API
// (status, drain/undrain, force/unforce, health and readiness, /metrics),
// the policy metrics derived from each snapshot, and the client that the
// `aagtm status|drain|undrain|force` commands use to fan out to every node.
//
// It holds no state of its own and decides nothing: the node implements
// Backend, which owns the overrides, their persistence and the engine.
// The JSON shape served by GET /v1/status is the Status type, shared by the
// server and the client.
package admin
