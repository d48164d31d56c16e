package probes

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/aagtm/aagtm/api"
	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/internal/testenv"
)

func TestSpreadWindow(t *testing.T) {
	for _, tc := range []struct {
		interval time.Duration
		n        int
		want     time.Duration
	}{
		{time.Second, 0, 0},
		{time.Second, 3, 300 * time.Microsecond},
		{time.Second, 1000, 100 * time.Millisecond},
		{time.Second, 5000, 500 * time.Millisecond},
		{time.Second, 10000, 500 * time.Millisecond},
		{100 * time.Millisecond, 1000, 50 * time.Millisecond},
		{2 * time.Second, 10000, 500 * time.Millisecond},
		{5 * time.Second, 4000, 400 * time.Millisecond},
	} {
		t.Run(fmt.Sprintf("%s/%d", tc.interval, tc.n), func(t *testing.T) {
			if got := SpreadWindow(tc.interval, tc.n); got != tc.want {
				t.Fatalf("SpreadWindow(%s, %d) = %s, want %s", tc.interval, tc.n, got, tc.want)
			}
		})
	}
}

// TestMembersOfOneEndpointShareAPool: members naming the same endpoint use
// one client (at most poolSize connections), every check passes for each,
// and the heartbeat is written once for them.
func TestMembersOfOneEndpointShareAPool(t *testing.T) {
	shared := testenv.StartRedis(t)
	other := testenv.StartRedis(t)
	var members []config.Member
	for i := range 6 {
		members = append(members, testenv.Member(fmt.Sprintf("s%d", i), use, shared.URL()))
	}
	members = append(members, testenv.Member("o", euw, other.URL()))
	cfg := testenv.ReportConfig(members...)
	cfg.Probes.Interval = time.Second
	cfg.Probes.Timeout = 500 * time.Millisecond
	cfg.Probes.Checks = []config.Check{config.CheckPing, config.CheckEcho, config.CheckKeyspace, config.CheckLag}
	a, err := NewAgent(cfg, agentU, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(a.pending.endpoints); got != 2 {
		t.Fatalf("%d endpoints for 7 members on 2 servers, want 2", got)
	}
	for round := range 3 {
		rep, err := a.ProbeOnce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range rep.GetMembers() {
			for _, c := range m.GetChecks() {
				if !c.GetOk() {
					t.Errorf("round %d: %s/%s: %s %s", round, m.GetMember(), c.GetName(), c.GetOutcome(), c.GetError())
				}
			}
		}
	}
	list, err := shared.Do("CLIENT", "LIST")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(fmt.Sprint(list), "name=aagtm-probe-"+agentU); n < 1 || n > poolSize {
		t.Fatalf("%d agent connections to the shared server, want 1..%d:\n%s", n, poolSize, list)
	}
	for _, e := range a.pending.endpoints {
		e.close()
	}
}

// TestDialBudgetExhaustedIsNotMeasured: a probe that cannot get a dial
// slot is not measured, not failed; with a slot it passes.
func TestDialBudgetExhaustedIsNotMeasured(t *testing.T) {
	srv := testenv.StartRedis(t)
	p := checkSettings(200 * time.Millisecond)
	for _, tc := range []struct {
		name  string
		slots int
		want  Outcome
	}{
		{"no slot", 0, OutcomeNotMeasured},
		{"a slot", 1, OutcomePass},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, took := pingWithBudget(t, srv, p, newDialBudget(tc.slots, 1))
			if r.outcome != tc.want {
				t.Fatalf("outcome %s (%s), want %s", r.outcome, r.err, tc.want)
			}
			if took > p.Timeout {
				t.Fatalf("took %s, beyond the %s timeout", took, p.Timeout)
			}
		})
	}
}

// pingWithBudget runs the ping check, as the agent does, of a fresh member
// on srv whose dials go through budget, and returns the result and how
// long it took.
func pingWithBudget(t *testing.T, srv *testenv.Redis, p config.Probes, budget *dialBudget) (result, time.Duration) {
	t.Helper()
	tg, err := newTarget(testenv.Member("m1", use, srv.URL()), p, agentU, use, endpoints{}, budget)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.ep.close()
	ctx, cancel := context.WithTimeout(context.Background(), p.Timeout)
	defer cancel()
	start := time.Now()
	r := pingCheck{}.run(ctx, &probe{t: tg, c: tg.redis(), settings: &p})
	return r, time.Since(start)
}

// TestHungSharedEndpointTimesOut: when the server behind a shared endpoint
// hangs, every member on it is reported as timed out (a real failure), not
// as not measured, though most of their probes waited for the endpoint's
// small pool.
func TestHungSharedEndpointTimesOut(t *testing.T) {
	const timeout = 300 * time.Millisecond
	srv := testenv.StartRedis(t)
	var members []config.Member
	for i := range 20 {
		members = append(members, testenv.Member(fmt.Sprintf("m%d", i), use, srv.URL()))
	}
	cfg := testenv.ReportConfig(members...)
	cfg.Probes.Interval = time.Second
	cfg.Probes.Timeout = timeout
	a, err := NewAgent(cfg, agentU, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.ProbeOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	for round := range 2 {
		start := time.Now()
		rep, err := a.ProbeOnce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > timeout+lateLimit(timeout)+roundSlack+100*time.Millisecond {
			t.Errorf("round %d took %s", round, took)
		}
		for _, m := range rep.GetMembers() {
			for _, c := range m.GetChecks() {
				if c.GetOk() || c.GetOutcome() != string(OutcomeTimeout) {
					t.Errorf("round %d: %s/%s = %s (%s), want timeout", round, m.GetMember(), c.GetName(), c.GetOutcome(), c.GetError())
				}
			}
		}
	}
	srv.Cont()
	rep, _ := a.ProbeOnce(context.Background())
	for _, m := range rep.GetMembers() {
		for _, c := range m.GetChecks() {
			if !c.GetOk() {
				t.Errorf("after SIGCONT: %s/%s: %s", m.GetMember(), c.GetName(), c.GetError())
			}
		}
	}
	for _, e := range a.pending.endpoints {
		e.close()
	}
}

// TestThousandMembersFromCold: 1,000 members with an endpoint each (one
// redis-server, a database number per member, as a Redis Software user
// has a port per database), opened by the warm-up, then probed: no check
// ever fails (a member the agent could not get to in time is not
// measured, never failed), and the last round measures nearly all. It logs
// the heap per member.
func TestThousandMembersFromCold(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 300
	}
	cfg := dbPerMember(t, n, config.CheckPing, config.CheckLag)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	a := newTestAgent(t, cfg)
	start := time.Now()
	a.warmUp(context.Background(), a.pending)
	t.Logf("warm-up: %s", time.Since(start))
	for round := range 3 {
		start := time.Now()
		rep, err := a.ProbeOnce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		failed, notMeasured := 0, 0
		for _, m := range rep.GetMembers() {
			for _, c := range m.GetChecks() {
				switch {
				case c.GetOk():
				case c.GetOutcome() == string(OutcomeNotMeasured):
					notMeasured++
				default:
					if failed++; failed <= 3 {
						t.Errorf("round %d: %s/%s: %s %s", round, m.GetMember(), c.GetName(), c.GetOutcome(), c.GetError())
					}
				}
			}
		}
		if failed > 0 {
			t.Errorf("round %d: %d failed checks of %d healthy members", round, failed, n)
		}
		if round == 2 && notMeasured > 2*n/10 {
			t.Errorf("round %d: %d of %d checks not measured after the warm-up and two rounds", round, notMeasured, 2*n)
		}
		t.Logf("round %d: %d members in %s (spread window %s), %d checks not measured",
			round, n, took, SpreadWindow(cfg.Probes.Interval, n), notMeasured)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("heap after 3 rounds: %d KiB per member (%d members, %d connections)",
		(int64(after.HeapInuse)-int64(before.HeapInuse))/int64(n)/1024, n, n)
}

// errDialTimedOut is a dial that timed out, as net reports it.
var errDialTimedOut = &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}

// TestBusyHostOutcome: a dial that finds its host's share of the budget
// taken is not measured while the host completes connections and the
// member's last probe passed; it fails like the host's last dial when that
// one failed (a hung or refusing host), and like the member's last probe
// when that one failed at the connection level (its connection timed out
// and it has not answered since).
func TestBusyHostOutcome(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, tc := range []struct {
		name     string
		lastDial error
		lastProb Outcome
		want     Outcome
	}{
		{"healthy host and member", nil, "", OutcomeNotMeasured},
		{"last dial timed out", errDialTimedOut, "", OutcomeTimeout},
		{"last dial refused", refused, "", OutcomeUnreachable},
		{"member's last probe timed out", nil, OutcomeTimeout, OutcomeTimeout},
		{"member's last probe unreachable", nil, OutcomeUnreachable, OutcomeUnreachable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newDialBudget(4, 1)
			hd := b.host("10.0.0.1:12000")
			if b.host("10.0.0.1:12001") != hd {
				t.Fatal("two ports of one host have separate shares")
			}
			hd.done(tc.lastDial)
			e := &endpoint{}
			e.probed(tc.lastProb, "PING: i/o timeout")
			if got := classify(e.busy(hd, "10.0.0.1:12000")); got != tc.want {
				t.Fatalf("outcome %s, want %s", got, tc.want)
			}
		})
	}
}

// TestFailingHostFailsAtOnce: when every dial slot of a host is taken and
// its last dial failed (a hung server whose accept queue is full holds
// each slot for a whole dial timeout), a member's probe fails like that
// dial at once instead of waiting for a slot; while the host's last dial
// succeeded, it waits (half the timeout) and is not measured.
func TestFailingHostFailsAtOnce(t *testing.T) {
	srv := testenv.StartRedis(t)
	for _, tc := range []struct {
		name     string
		lastDial error
		want     Outcome
		waits    bool
	}{
		{"last dial timed out", errDialTimedOut, OutcomeTimeout, false},
		{"last dial succeeded", nil, OutcomeNotMeasured, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := checkSettings(2 * time.Second)
			b := newDialBudget(4, 1)
			hd := b.host(srv.Addr())
			hd.slots <- struct{}{} // the host's one slot, held by a pending dial
			hd.done(tc.lastDial)
			r, took := pingWithBudget(t, srv, p, b)
			if r.outcome != tc.want {
				t.Fatalf("outcome %s (%s), want %s", r.outcome, r.err, tc.want)
			}
			if waited := took >= p.Timeout/2; waited != tc.waits {
				t.Errorf("took %s: waited for a slot %v, want %v", took, waited, tc.waits)
			}
		})
	}
}

// TestLargeReportFitsTheStream: 10,000 failing members with long error
// texts, put into a node's mailbox as two chunks (merged there, as while
// the node is slow), come out trimmed under the stream's message limit,
// keeping every entry and outcome and the first texts whole; the chunks
// themselves, shared with other nodes' mailboxes, are left as they were.
func TestLargeReportFitsTheStream(t *testing.T) {
	long := strings.Repeat("dial: every connection slot for 127.0.0.41 is taken by a pending dial ", 2)
	chunks := []*api.Report{{AgentId: agentU, Region: use, Seq: 1}, {AgentId: agentU, Region: use, Seq: 2}}
	for i := range 10000 {
		c := chunks[i/5000]
		c.Members = append(c.Members, &api.MemberReport{
			Member: fmt.Sprintf("db%05d-use", i),
			Checks: []*api.CheckResult{{Name: "ping", Error: long, Outcome: string(OutcomeTimeout), Duration: durationpb.New(time.Second)}},
		})
	}
	m := newMailbox()
	var trims int
	m.trimmed = func(members, before, after int) { trims++ }
	for _, c := range chunks {
		m.put(c)
	}
	rep, _ := m.take()
	if size := proto.Size(rep); size > reportBudget {
		t.Fatalf("report is %d bytes after trimming, want ≤ %d", size, reportBudget)
	}
	if trims != 1 {
		t.Errorf("trimmed hook called %d times, want 1", trims)
	}
	if len(rep.Members) != 10000 || rep.Members[9999].Checks[0].Outcome != string(OutcomeTimeout) {
		t.Fatal("trimming lost entries or outcomes")
	}
	if rep.Members[0].Checks[0].Error != long {
		t.Fatal("the first error text was trimmed")
	}
	for _, c := range chunks {
		if c.Members[len(c.Members)-1].Checks[0].Error != long {
			t.Fatal("trimming shortened a chunk other nodes' mailboxes share")
		}
	}
}

// TestRoundReportsInChunks: a round whose spread window is longer than
// chunkEvery reports in chunks as its databases' probes return: every
// member exactly once, each chunk whole databases, and the first chunk
// leaves while later databases are still to be probed; merged, the chunks
// are the round's full report. A round of a few members is one report.
func TestRoundReportsInChunks(t *testing.T) {
	const dbs = 750 // × 2 members: a 150 ms spread window
	cfg := dbPerMember(t, 2*dbs, config.CheckPing)
	members := cfg.Databases[0].Members
	cfg.Databases = nil
	for d := range dbs {
		name := fmt.Sprintf("db%d", d)
		pair := []config.Member{members[2*d], members[2*d+1]}
		for i := range pair {
			pair[i].Database = name
		}
		cfg.Databases = append(cfg.Databases, config.Database{Name: name, Host: name + ".gtm.example.com.", Mode: config.ModeNearest, Members: pair})
	}
	if w := SpreadWindow(cfg.Probes.Interval, 2*dbs); w <= chunkEvery {
		t.Fatalf("spread window %s: the test needs more than chunkEvery (%s)", w, chunkEvery)
	}
	a := newTestAgent(t, cfg)
	a.warmUp(context.Background(), a.pending)
	var chunks []*api.Report
	if !a.round(context.Background(), a.pending, func(r *api.Report) { chunks = append(chunks, r) }) {
		t.Fatal("round canceled")
	}
	a.wg.Wait()
	if len(chunks) < 2 {
		t.Fatalf("%d report(s), want the round in chunks", len(chunks))
	}
	seen := map[string]int{}
	for c, rep := range chunks {
		dbOf := map[string]int{}
		for _, m := range rep.GetMembers() {
			seen[m.GetMember()]++
			if c := m.GetChecks()[0]; !c.GetOk() {
				t.Errorf("%s: %s %s", m.GetMember(), c.GetOutcome(), c.GetError())
			}
			var i int
			fmt.Sscanf(m.GetMember(), "m%d", &i)
			dbOf[fmt.Sprint(i/2)]++
		}
		for db, k := range dbOf {
			if k != 2 {
				t.Errorf("chunk %d holds %d of database db%s's 2 members", c, k, db)
			}
		}
	}
	for _, m := range members {
		if seen[m.Name] != 1 {
			t.Errorf("%s reported %d times, want once", m.Name, seen[m.Name])
		}
	}
	last := members[len(members)-1].Name
	for _, m := range chunks[0].GetMembers() {
		if m.GetMember() == last {
			t.Errorf("the first chunk holds the last database: it waited for the whole window")
		}
	}
	var merged *api.Report
	for _, c := range chunks {
		merged = mergeReports(merged, c)
	}
	if len(merged.GetMembers()) != len(members) {
		t.Errorf("merged chunks hold %d members, want %d", len(merged.GetMembers()), len(members))
	}

	small := newTestAgent(t, testenv.ReportConfig(members[0], members[1]))
	var reps int
	small.round(context.Background(), small.pending, func(*api.Report) { reps++ })
	small.wg.Wait()
	if reps != 1 {
		t.Errorf("a round of 2 members sent %d reports, want 1", reps)
	}
}
