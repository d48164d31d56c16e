package ingest

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/internal/testenv"
)

func TestIngestDropsUnknownMembers(t *testing.T) {
	cfg := testenv.ReportConfig(testenv.Member("cache-use", use, "redis://127.0.0.1:1"))
	_, rec, addr := startIngest(t, cfg)
	ack, err := dialRaw(t, addr, insecure.NewCredentials(), "", report(agentU, use, 9, "cache-use", "cache-new"))
	if err != nil {
		t.Fatal(err)
	}
	if got := ack.GetRejectedMembers(); len(got) != 1 || got[0] != "cache-new" || ack.GetRejectedMemberCount() != 1 ||
		!strings.Contains(ack.GetError(), "unknown members cache-new") {
		t.Errorf("ack %v: want cache-new rejected", ack)
	}
	if ack.GetSeq() != 9 || !ack.GetAccepted() {
		t.Errorf("ack seq %d accepted %v, want 9 and accepted", ack.GetSeq(), ack.GetAccepted())
	}
	obs := rec.All()
	if len(obs) != 1 || obs[0].Member != "cache-use" || obs[0].Seq != 1 {
		t.Errorf("observations %+v, want only cache-use with node seq 1", obs)
	}
	if obs[0].Checks[0].Outcome != "pass" {
		t.Errorf("outcome %q, want pass carried through", obs[0].Checks[0].Outcome)
	}
}

// A report naming 10,000 unknown members gets an ack of a few names and a
// count, not an echo of the report.
func TestIngestAckForManyUnknownMembersIsSmall(t *testing.T) {
	cfg := testenv.ReportConfig(testenv.Member("cache-use", use, "redis://127.0.0.1:1"))
	_, rec, addr := startIngest(t, cfg)
	names := []string{"cache-use"}
	for i := range 10_000 {
		names = append(names, "ghost-member-with-a-rather-long-name-"+strings.Repeat("x", 20)+"-"+string(rune('a'+i%26))+strings.Repeat("0", i%7))
	}
	ack, err := dialRaw(t, addr, insecure.NewCredentials(), "", report(agentU, use, 1, names...))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(ack.GetRejectedMembers()); n != maxRejectedNames || ack.GetRejectedMemberCount() != 10_000 {
		t.Errorf("ack lists %d names, count %d; want %d names and 10000", n, ack.GetRejectedMemberCount(), maxRejectedNames)
	}
	if size := len(ack.String()); size > 2048 {
		t.Errorf("ack is %d bytes of text, want a small one", size)
	}
	if !ack.GetAccepted() || len(rec.All()) != 1 {
		t.Errorf("accepted %v with %d observations; want the known member kept", ack.GetAccepted(), len(rec.All()))
	}
	if !strings.Contains(ack.GetError(), "and 9995 more") {
		t.Errorf("ack error %q, want the count of names left out", ack.GetError())
	}
}

func TestIngestRateLimit(t *testing.T) {
	cfg := testenv.ReportConfig(testenv.Member("cache-use", use, "redis://127.0.0.1:1"))
	reg := prometheus.NewRegistry()
	in, rec, addr := startIngest(t, cfg, WithRateLimit(20), WithRegisterer(reg))
	c := dialStream(t, addr, insecure.NewCredentials(), "")
	const sent = 60
	start := time.Now()
	dropped := 0
	for i := 1; i <= sent; i++ {
		ack, err := c.send(report(agentU, use, uint64(i), "cache-use"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(ack.GetError(), "rate limit") {
			dropped++
			if ack.GetAccepted() {
				t.Errorf("a dropped report is acked as accepted")
			}
		}
	}
	elapsed := time.Since(start).Seconds()
	accepted := len(rec.All())
	if max := 20 + int(20*elapsed) + 1; accepted > max {
		t.Errorf("%d of %d reports accepted in %.2fs; the limit allows at most %d", accepted, sent, elapsed, max)
	}
	if accepted+dropped != sent || dropped == 0 {
		t.Errorf("accepted %d + dropped %d != sent %d", accepted, dropped, sent)
	}
	if s := in.Agents(); len(s) != 1 || s[0].Dropped != uint64(dropped) || !strings.Contains(s[0].LastRefusal, "rate limit") {
		t.Errorf("status %+v, want %d dropped", s, dropped)
	}
	if got := counter(t, reg, "aagtm_ingest_reports_total", "result", "rate_limited"); got != float64(dropped) {
		t.Errorf("aagtm_ingest_reports_total{result=rate_limited} = %v, want %d", got, dropped)
	}
	if got := counter(t, reg, "aagtm_ingest_reports_total", "result", "accepted"); got != float64(accepted) {
		t.Errorf("aagtm_ingest_reports_total{result=accepted} = %v, want %d", got, accepted)
	}
}

func TestIngestSecurityErrors(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*config.Config)
		errHas string
	}{
		{"nothing", func(c *config.Config) { c.Security = config.Security{} }, "security.insecure: true"},
		{"token file missing", func(c *config.Config) { c.Agents[0].TokenFile = "/nonexistent" }, "agents[0].token_file"},
		{"CA without cert", func(c *config.Config) { c.Security = config.Security{TLS: config.TLS{CA: "/nonexistent"}} }, "cert and key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testenv.ReportConfig()
			tc.mutate(cfg)
			in := New(cfg, testenv.Logger(t), nil)
			if _, err := in.ServerOptions(); err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("ServerOptions error %v, want %q", err, tc.errHas)
			}
		})
	}
	t.Run("two agents with one token", func(t *testing.T) {
		cfg := testenv.ReportConfig()
		withTokens(t, cfg, t.TempDir())
		cfg.Agents[1].TokenFile = cfg.Agents[0].TokenFile
		in := New(cfg, testenv.Logger(t), nil)
		if _, err := in.ServerOptions(); err == nil || !strings.Contains(err.Error(), "each agent needs its own") {
			t.Fatalf("ServerOptions error %v", err)
		}
	})
	t.Run("reconfigure keeps the transport", func(t *testing.T) {
		p := testenv.NewPKI(t, agentU)
		cfg := testenv.ReportConfig()
		cfg.Security = p.NodeSecurity()
		in := New(cfg, testenv.Logger(t), nil)
		if _, err := in.ServerOptions(); err != nil {
			t.Fatal(err)
		}
		plain := testenv.ReportConfig()
		if err := in.Reconfigure(plain); err == nil || !strings.Contains(err.Error(), "restart the node") {
			t.Fatalf("Reconfigure from TLS to plaintext: %v", err)
		}
		again := testenv.ReportConfig()
		again.Security = p.NodeSecurity()
		again.Agents = again.Agents[:1]
		if err := in.Reconfigure(again); err != nil {
			t.Fatal(err)
		}
	})
}
