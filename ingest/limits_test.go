package ingest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/connectivity"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/aagtm/aagtm/api"
	"github.com/aagtm/aagtm/internal/testenv"
)

// handlers counts the goroutines running the ingest's stream handler.
func handlers() int {
	var b bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&b, 2)
	return strings.Count(b.String(), "\ngithub.com/aagtm/aagtm/ingest.(*reportService).Stream(")
}

// 1,000 idle streams (opened, nothing sent) against a node with two
// agents: past the cap of 2 × 2 + 16 = 20 open streams they are refused
// with ResourceExhausted, and the node holds no more than 20 handlers.
func TestIngestThousandIdleStreams(t *testing.T) {
	cfg := testenv.ReportConfig(testenv.Member("cache-use", use, "redis://127.0.0.1:1"))
	reg := prometheus.NewRegistry()
	_, _, addr := startIngest(t, cfg, WithRegisterer(reg))
	const (
		streams  = 1000
		perConn  = 4 // the server's MaxConcurrentStreams
		capTotal = 2*2 + 16
	)
	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var conns []*grpc.ClientConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	results := make(chan codes.Code, streams)
	var wg sync.WaitGroup
	for i := 0; i < streams/perConn; i++ {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
		for range perConn {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, err := api.NewReportServiceClient(conn).Stream(ctx)
				if err == nil {
					_, err = st.Recv() // idle: sends nothing, waits
				}
				results <- status.Code(err)
			}()
		}
	}
	testenv.WaitFor(t, 20*time.Second, "every stream past the cap refused", func() bool {
		return counter(t, reg, "aagtm_ingest_refused_streams_total", "code", "ResourceExhausted") >= streams-capTotal
	})
	// Refused handlers may still be logging their refusal for a moment
	// (the counter goes first); what stays is at most the cap.
	testenv.WaitFor(t, 5*time.Second, fmt.Sprintf("at most %d stream handlers running", capTotal), func() bool { return handlers() <= capTotal })
	if open := counter(t, reg, "aagtm_ingest_streams", "", ""); open > capTotal {
		t.Errorf("aagtm_ingest_streams = %v, want at most %d", open, capTotal)
	}
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	// Client and server share this process: the bound covers both ends of
	// 250 connections.
	if grown := int64(m1.HeapInuse) - int64(m0.HeapInuse); grown > 256<<20 {
		t.Errorf("heap grew by %d MiB for 1,000 idle streams", grown>>20)
	}
	t.Logf("heap +%d KiB, %d goroutines in the process, %d handlers", (int64(m1.HeapInuse)-int64(m0.HeapInuse))>>10, runtime.NumGoroutine(), handlers())

	cancel()
	wg.Wait()
	close(results)
	refused := 0
	for c := range results {
		if c == codes.ResourceExhausted {
			refused++
		}
	}
	if refused != streams-capTotal {
		t.Errorf("%d streams refused with ResourceExhausted, want %d", refused, streams-capTotal)
	}
}

// One agent may hold MaxAgentStreams streams; the next is refused,
// and a refused flood from one source is one WARN line.
func TestIngestPerAgentStreamCap(t *testing.T) {
	cfg := testenv.ReportConfig(testenv.Member("cache-use", use, "redis://127.0.0.1:1"))
	toks := withTokens(t, cfg, t.TempDir())
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := hclog.New(&hclog.LoggerOptions{Output: &lockedWriter{w: &logs, mu: &mu}, Level: hclog.Debug})
	reg := prometheus.NewRegistry()
	in := New(cfg, logger, nil, WithRegisterer(reg))
	addr := serve(t, in)

	var held []*client
	for i := range MaxAgentStreams {
		c := dialStream(t, addr, insecure.NewCredentials(), toks[agentU])
		if ack, err := c.send(report(agentU, use, uint64(i+1), "cache-use")); err != nil || !ack.GetAccepted() {
			t.Fatalf("stream %d: ack %v, error %v", i, ack, err)
		}
		held = append(held, c)
	}
	_, err := dialRaw(t, addr, insecure.NewCredentials(), toks[agentU], report(agentU, use, 99, "cache-use"))
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), `agent "agent-use" already holds 4 open report streams`) {
		t.Fatalf("stream past the agent's cap: %v, want ResourceExhausted", err)
	}
	// The other agent is not affected.
	if ack, err := dialRaw(t, addr, insecure.NewCredentials(), toks[agentE], report(agentE, euw, 1, "cache-use")); err != nil || !ack.GetAccepted() {
		t.Fatalf("agent-euw: ack %v, error %v", ack, err)
	}
	if st := in.Agents(); len(st) != 2 || st[1].ID != agentU || st[1].Streams != MaxAgentStreams || !st[1].Connected || st[1].StreamSince.IsZero() {
		t.Errorf("status %+v, want agent-use with %d streams", st, MaxAgentStreams)
	}

	// 100 refusals from one source: one WARN line.
	for range 100 {
		if _, err := dialRaw(t, addr, insecure.NewCredentials(), "wrong-token", report(agentU, use, 1)); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("wrong token: %v", err)
		}
	}
	mu.Lock()
	warns := 0
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "[WARN]") && strings.Contains(line, "report stream refused") {
			warns++
		}
	}
	mu.Unlock()
	if warns != 1 {
		t.Errorf("%d WARN lines for 101 refused streams from one source in well under 10 s, want 1", warns)
	}
	if got := counter(t, reg, "aagtm_ingest_refused_streams_total", "reason", "auth"); got != 100 {
		t.Errorf("refused streams (auth) = %v, want 100", got)
	}
	if got := counter(t, reg, "aagtm_ingest_refused_streams_total", "reason", "agent_streams"); got != 1 {
		t.Errorf("refused streams (agent_streams) = %v, want 1", got)
	}
	for _, c := range held {
		_ = c.st.CloseSend()
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// A connection that never completes its handshake is closed after the
// handshake timeout (gRPC's own default is 120 s); one that completes it
// but opens no stream is closed after the idle timeout.
func TestIngestConnectionTimeouts(t *testing.T) {
	cfg := testenv.ReportConfig(testenv.Member("cache-use", use, "redis://127.0.0.1:1"))
	_, _, addr := startIngest(t, cfg, WithConnectionTimeouts(200*time.Millisecond, 300*time.Millisecond))

	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	start := time.Now()
	_ = silent.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = io.ReadAll(silent) // the server's preface, then EOF when it hangs up
	if took := time.Since(start); err != nil || took > 2*time.Second {
		t.Errorf("a silent connection was closed after %s (error %v), want about 200ms", took, err)
	}

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Connect()
	testenv.WaitFor(t, 2*time.Second, "the idle connection to be ready", func() bool { return conn.GetState() == connectivity.Ready })
	testenv.WaitFor(t, 3*time.Second, "the idle connection to be closed by the node", func() bool { return conn.GetState() != connectivity.Ready })
}
