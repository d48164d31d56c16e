package ingest

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/aagtm/aagtm/api"
	"github.com/aagtm/aagtm/internal/testenv"
	"github.com/aagtm/aagtm/policy"
)

// FuzzReport feeds arbitrary bytes, decoded as an api.Report, through the
// node's validation and conversion path (Ingest.handle, on a stream
// authenticated in insecure mode or by a client certificate for agent-use)
// and on into a policy engine. Nothing may panic, and the ingest must be
// consistent:
//
//   - a report for another agent than the certificate's ends the stream;
//   - a report is accepted exactly when its agent is configured, agrees
//     with the certificate, names the agent's region and has a seq above 0
//     (a fresh ingest's baseline);
//   - a rejected report yields no observation and an ack with an error,
//     not marked accepted;
//   - an accepted one yields one observation per entry naming a configured
//     member, in order, and lists every other entry in the ack's
//     rejected_members (at most a few names, with the count of all, and an
//     error) — never an unknown member in an observation;
//   - observations carry the agent's configured region, the node's
//     sequence (1 on a fresh ingest), the node's clock, the check outcomes,
//     and no negative duration;
//   - handling the same report twice on fresh ingests gives the same result.
//
// The engine then evaluates them: its answers and member statuses name only
// configured members, and it keeps lag only behind configured regions.
//
//	go test -run '^$' -fuzz FuzzReport -fuzztime 60s ./ingest/
func FuzzReport(f *testing.F) {
	cfg := testenv.ReportConfig(testenv.Member("cache-use", use, "redis://127.0.0.1:1"), testenv.Member("cache-euw", euw, "redis://127.0.0.1:2"))
	cfg.Zone.Name = "gtm.example.com."
	known := map[string]bool{"cache-use": true, "cache-euw": true}
	regionOf := map[string]string{agentU: use, agentE: euw}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	for _, r := range fuzzSeeds() {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
	f.Add([]byte{}, false)
	f.Add([]byte{0x0a, 0x09, 'a', 'g', 'e', 'n', 't', '-', 'u', 's', 'e'}, true)

	f.Fuzz(func(t *testing.T, data []byte, withCert bool) {
		var r api.Report
		if err := proto.Unmarshal(data, &r); err != nil {
			return
		}
		p := principal{method: methodInsecure, remote: "127.0.0.1:9"}
		if withCert {
			p = principal{agent: agentU, method: methodMTLS, remote: "127.0.0.1:9"}
		}
		handle := func() ([]policy.Observation, *api.Ack, error) {
			var got []policy.Observation
			in := New(cfg, nil, func(obs []policy.Observation) { got = append(got, obs...) },
				WithRateLimit(0), WithClock(func() time.Time { return now }),
				WithRegisterer(prometheus.NewRegistry()), WithNodeName("ns1"))
			ack, err := in.handle(&openStream{p: p, agent: p.agent}, &r)
			return got, ack, err
		}
		obs, ack, herr := handle()

		// The expected verdict, computed independently.
		id := r.GetAgentId()
		if withCert && id == "" {
			id = agentU
		}
		region, agentKnown := regionOf[id]
		accept := agentKnown && (!withCert || id == agentU) && r.GetRegion() == region && r.GetSeq() > 0

		if withCert && id != agentU {
			if herr == nil || len(obs) != 0 {
				t.Fatalf("report for %q on a stream of %q: error %v, %d observations; want the stream ended", id, agentU, herr, len(obs))
			}
			return
		}
		if herr != nil {
			t.Fatalf("handle: %v", herr)
		}
		if !accept {
			if len(obs) != 0 || ack.GetError() == "" || ack.GetAccepted() || len(ack.GetRejectedMembers()) != 0 {
				t.Fatalf("rejected report (agent %q region %q cert %v): %d observations, ack %v; want none and an error",
					r.GetAgentId(), r.GetRegion(), withCert, len(obs), ack)
			}
			return
		}
		if ack.GetSeq() != r.GetSeq() || !ack.GetAccepted() {
			t.Fatalf("accepted report: ack seq %d accepted %v, want %d and true", ack.GetSeq(), ack.GetAccepted(), r.GetSeq())
		}
		var wantMembers, wantRejected []string
		var entries []*api.MemberReport
		for _, m := range r.GetMembers() {
			if known[m.GetMember()] {
				wantMembers = append(wantMembers, m.GetMember())
				entries = append(entries, m)
			} else {
				wantRejected = append(wantRejected, m.GetMember())
			}
		}
		listed := wantRejected[:min(len(wantRejected), maxRejectedNames)]
		if !slices.Equal(ack.GetRejectedMembers(), listed) || int(ack.GetRejectedMemberCount()) != len(wantRejected) {
			t.Fatalf("rejected_members %q (count %d), want %q (count %d)",
				ack.GetRejectedMembers(), ack.GetRejectedMemberCount(), listed, len(wantRejected))
		}
		if (ack.GetError() != "") != (len(wantRejected) > 0) {
			t.Fatalf("ack error %q with %d unknown members", ack.GetError(), len(wantRejected))
		}
		if len(obs) != len(wantMembers) {
			t.Fatalf("%d observations, want %d (%q)", len(obs), len(wantMembers), wantMembers)
		}
		for i, o := range obs {
			m := entries[i]
			if o.Member != wantMembers[i] || !known[o.Member] {
				t.Fatalf("observation %d names %q, want %q", i, o.Member, wantMembers[i])
			}
			// Seq is the node's number of the accepted report: 1 on
			// a fresh ingest.
			if o.Agent != id || o.Region != region || o.Seq != 1 || !o.Time.Equal(now) {
				t.Fatalf("observation %d: agent %q region %q seq %d time %v; want %q %q 1 %v",
					i, o.Agent, o.Region, o.Seq, o.Time, id, region, now)
			}
			if o.RTT < 0 {
				t.Fatalf("observation %d: negative RTT %v", i, o.RTT)
			}
			if len(o.Checks) != len(m.GetChecks()) {
				t.Fatalf("observation %d: %d checks, want %d", i, len(o.Checks), len(m.GetChecks()))
			}
			for j, c := range o.Checks {
				mc := m.GetChecks()[j]
				if c.Check != mc.GetName() || c.OK != mc.GetOk() || c.Error != mc.GetError() || c.Duration < 0 ||
					string(c.Outcome) != mc.GetOutcome() {
					t.Fatalf("observation %d check %d = %+v, from %v", i, j, c, mc)
				}
			}
			if len(o.Lag) != len(m.GetLag()) {
				t.Fatalf("observation %d: %d lag entries, want %d", i, len(o.Lag), len(m.GetLag()))
			}
			for src, l := range o.Lag {
				if l < 0 {
					t.Fatalf("observation %d: negative lag %v behind %q", i, l, src)
				}
			}
		}

		// Deterministic: the same report on a fresh ingest, same result.
		obs2, ack2, _ := handle()
		if !proto.Equal(ack, ack2) || len(obs2) != len(obs) {
			t.Fatalf("second handling differs: ack %v vs %v, %d vs %d observations", ack, ack2, len(obs), len(obs2))
		}

		// Downstream: the engine takes them without panicking and answers
		// only configured members, now and after the vantage goes stale.
		e := policy.New(cfg)
		for _, o := range obs {
			e.Observe(o)
		}
		for _, at := range []time.Time{now, now.Add(time.Second), now.Add(time.Hour)} {
			snap := e.Evaluate(at, policy.Overrides{})
			for _, h := range snap.Hosts {
				for _, a := range h.ByRegion {
					for _, name := range a.Members {
						if !known[name] {
							t.Fatalf("engine answers unknown member %q", name)
						}
					}
				}
			}
			for name := range snap.Members {
				if !known[name] {
					t.Fatalf("engine reports status of unknown member %q", name)
				}
			}
		}
		for _, ms := range e.Export().Members {
			for src := range ms.Lag {
				if src != use && src != euw {
					t.Fatalf("engine keeps %s's lag behind unconfigured region %q", ms.Name, src)
				}
			}
		}
	})
}

// fuzzSeeds are reports of every shape the ingest distinguishes.
func fuzzSeeds() []*api.Report {
	checks := []*api.CheckResult{
		{Name: "ping", Ok: true, Duration: durationpb.New(300 * time.Microsecond), Outcome: "pass"},
		{Name: "keyspace", Ok: false, Error: "keyspace: i/o timeout", Duration: durationpb.New(80 * time.Millisecond), Outcome: "timeout"},
	}
	full := &api.Report{
		AgentId: agentU, Region: use, Seq: 42, Sent: timestamppb.New(time.Unix(1_700_000_000, 0)), ConfigHash: "0123456789abcdef",
		Members: []*api.MemberReport{
			{Member: "cache-use", Checks: checks, Rtt: durationpb.New(time.Millisecond),
				Lag:        map[string]*durationpb.Duration{euw: durationpb.New(3 * time.Millisecond)},
				Heartbeats: map[string]*api.Heartbeat{use: {Seq: 41, UnixNanos: 1_700_000_000_000_000_000, Writer: agentU}}},
			{Member: "cache-euw", Checks: checks[:1], Rtt: durationpb.New(2 * time.Millisecond)},
			{Member: "cache-nope", Checks: checks[:1]},
		},
	}
	extreme := &api.Report{
		AgentId: agentU, Region: use, Seq: math.MaxUint64,
		Members: []*api.MemberReport{{
			Member: "cache-use",
			Checks: []*api.CheckResult{{Name: "ping", Ok: true, Duration: &durationpb.Duration{Seconds: -315576000000}}},
			Rtt:    &durationpb.Duration{Seconds: 315576000000, Nanos: 999999999},
			Lag: map[string]*durationpb.Duration{
				"no-such-region": {Seconds: -5},
				euw:              {Seconds: math.MaxInt64},
				"":               nil,
			},
		}},
	}
	return []*api.Report{
		full,
		extreme,
		{AgentId: agentE, Region: euw, Seq: 1, Members: []*api.MemberReport{{Member: "cache-euw"}}},
		{AgentId: agentE, Region: use, Seq: 2},                                                  // wrong region
		{AgentId: "stranger", Region: use, Seq: 3},                                              // unknown agent
		{Region: use, Seq: 4, Members: full.Members},                                            // no agent id (certificate fills it)
		{AgentId: agentU, Region: use, Members: []*api.MemberReport{{}, {Member: "cache-use"}}}, // empty entries
	}
}
