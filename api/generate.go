// Package api holds the gRPC report protocol between aagtm probe agents and
// GTM nodes: the report.proto definition and its generated Go code.
//
// It contains no logic; package probes implements both ends. See README.md
// for how to regenerate the code.
package api

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative report.proto
