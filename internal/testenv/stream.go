package testenv

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/aagtm/aagtm/api"
)

// OpenReportStream opens a report stream to a node's ingest at addr over
// creds, presenting token (when not empty) as an agent's bearer token
// with every RPC, whatever the transport: tests use it to act as an agent,
// or as a rogue client. The stream and its connection end with the test.
func OpenReportStream(t testing.TB, addr string, creds credentials.TransportCredentials, token string) (api.ReportService_StreamClient, *grpc.ClientConn, error) {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(token)))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatalf("testenv: report client for %s: %v", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); conn.Close() })
	st, err := api.NewReportServiceClient(conn).Stream(ctx)
	return st, conn, err
}

// bearer sends a token with every RPC, over any transport.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }
