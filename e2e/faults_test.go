package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aagtm/aagtm/admin"
	"github.com/aagtm/aagtm/internal/testenv"
)

// Failure modes, each against real processes: how a member fails (hang,
// slowness, flapping, stalled replication), how the probe network fails
// (one agent cut off from one member, or from every node), what happens
// when every agent falls silent, and DNS under load while a member dies
// and returns. Assertions are on DNS answers as clients see them, and on
// the nodes' admin status where the case is about verdicts and vantages.
// Every bound comes from the deployment's settings plus slack for a loaded
// machine.

// The members' answered addresses.
const (
	addrUse = "127.0.0.21"
	addrEuw = "127.0.0.22"
	addrAps = "127.0.0.23"
)

// healthyAnswers is what every region gets when every member is healthy:
// its own member.
var healthyAnswers = map[string]string{"us-east": addrUse, "eu-west": addrEuw, "ap-south": addrAps}

// slack absorbs scheduling delays on a loaded 2-core machine in every bound
// below.
const slack = time.Second

// faultParams are the settings of these tests: the default short ones,
// fall 2 included. An agent starved of CPU on this loaded 2-core machine
// reports the probes it could not run in time as not_measured, which is no
// evidence, so starvation alone cannot make a healthy member down.
func faultParams() deployParams {
	return defaultParams()
}

// watchStalls measures how late the test process's own timers fire, and
// logs the stalls over 100ms if the test fails: a loaded machine starves
// the agents and nodes too, which explains many a missed bound.
func watchStalls(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var stalls []string
	begin := time.Now()
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			t0 := time.Now()
			time.Sleep(10 * time.Millisecond)
			if late := time.Since(t0) - 10*time.Millisecond; late > 100*time.Millisecond {
				stalls = append(stalls, fmt.Sprintf("%s at +%s", late.Round(time.Millisecond), t0.Sub(begin).Round(time.Millisecond)))
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() && len(stalls) > 0 {
			t.Logf("the test process stalled (a loaded machine): %s", strings.Join(stalls, ", "))
		}
	})
}

// answerOf asks server for cache.gtm.test as a client of region. A lost
// UDP datagram on a loaded machine is no answer at all, not the answer
// under test, so a transport error is retried twice.
func answerOf(server, region string) string {
	var got string
	for i := 0; i < 3; i++ {
		got = answerA(server, "cache.gtm.test", clientOf(region))
		if !strings.HasPrefix(got, "error: ") {
			return got
		}
	}
	return got
}

// waitAnswer waits until every node answers want to clients of region and
// returns, per node, how long after from that was first seen.
func (d *deployment) waitAnswer(t *testing.T, region, want string, from time.Time, timeout time.Duration) []time.Duration {
	t.Helper()
	seen := make([]time.Duration, len(d.dns))
	left := len(d.dns)
	for left > 0 {
		for i, server := range d.dns {
			if seen[i] == 0 && answerOf(server, region) == want {
				seen[i] = time.Since(from)
				left--
			}
		}
		if left > 0 && time.Since(from) > timeout {
			t.Fatalf("timed out after %s waiting for every node to answer %s to %s clients (seen: %v)", timeout, want, region, seen)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return seen
}

// waitStatus waits until cond holds for every node's status and returns
// how long that took; on timeout it logs the last status of the node that
// did not satisfy it.
func (d *deployment) waitStatus(t *testing.T, timeout time.Duration, what string, cond func(st *admin.Status) bool) time.Duration {
	t.Helper()
	start := time.Now()
	ok := make([]bool, len(d.admin))
	for {
		done := true
		var last *admin.Status
		for i, a := range d.admin {
			if ok[i] {
				continue
			}
			st, err := status(a)
			if err == nil && cond(st) {
				ok[i] = true
				continue
			}
			done, last = false, st
		}
		if done {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %s waiting for %s on every node; last status:\n%s", timeout, what, statusText(last))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// statusText renders the members of a status for a failure message.
func statusText(st *admin.Status) string {
	if st == nil {
		return "(none)"
	}
	var b strings.Builder
	for _, m := range st.Members {
		fmt.Fprintf(&b, "  %s verdict=%s lagging=%v lag=%.3fs known=%v settled=%v\n", m.Name, m.Verdict, m.Lagging, m.LagSeconds, m.LagKnown, m.Settled)
		for _, v := range m.Vantages {
			fmt.Fprintf(&b, "    %s verdict=%s fresh=%v passes=%d failures=%d err=%q\n", v.Agent, v.Verdict, v.Fresh, v.Passes, v.Failures, v.LastError)
		}
	}
	for _, a := range st.Answers {
		fmt.Fprintf(&b, "  answer %s %s: %v (%s)\n", a.Database, a.Region, a.Members, a.Reason)
	}
	return b.String()
}

// memberIn returns a member's status in st (the zero value when absent).
func memberIn(st *admin.Status, name string) admin.MemberStatus {
	for _, m := range st.Members {
		if m.Name == name {
			return m
		}
	}
	return admin.MemberStatus{}
}

// vantageIn returns agent's view of member m (the zero value when absent).
func vantageIn(m admin.MemberStatus, agent string) admin.VantageStatus {
	for _, v := range m.Vantages {
		if v.Agent == agent {
			return v
		}
	}
	return admin.VantageStatus{}
}

// allUp reports whether every member's verdict is up in st.
func allUp(st *admin.Status) bool {
	for _, m := range st.Members {
		if m.Verdict != "up" {
			return false
		}
	}
	return len(st.Members) == len(testRegions)
}

// sample is one answer seen by a recorder.
type sample struct {
	at     time.Time // when the query was sent
	answer string
}

// answerRecorder polls nodes' answers for regions in the background, as
// clients polling every few milliseconds would see them.
type answerRecorder struct {
	period time.Duration
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	mu      sync.Mutex
	samples map[string][]sample // by recKey(server, region)
}

func recKey(server, region string) string { return server + " " + region }

// recordAnswers starts polling servers for regions every period; stop (or
// the test's end) stops it.
func (d *deployment) recordAnswers(t *testing.T, period time.Duration, servers, regions []string) *answerRecorder {
	ctx, cancel := context.WithCancel(context.Background())
	r := &answerRecorder{period: period, cancel: cancel, done: make(chan struct{}), samples: map[string][]sample{}}
	go func() {
		defer close(r.done)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			for _, s := range servers {
				for _, reg := range regions {
					at := time.Now()
					got := answerOf(s, reg)
					r.mu.Lock()
					r.samples[recKey(s, reg)] = append(r.samples[recKey(s, reg)], sample{at, got})
					r.mu.Unlock()
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(r.stop)
	return r
}

// recordAll records every node's answer for every region every 50ms.
func (d *deployment) recordAll(t *testing.T) *answerRecorder {
	var regions []string
	for _, r := range testRegions {
		regions = append(regions, r.name)
	}
	return d.recordAnswers(t, 50*time.Millisecond, d.dns, regions)
}

// stop ends the polling, after two more polls so that the series holds
// what the caller has just seen, and waits for it.
func (r *answerRecorder) stop() {
	r.once.Do(func() {
		time.Sleep(2 * r.period)
		r.cancel()
	})
	<-r.done
}

// series returns the samples of server and region.
func (r *answerRecorder) series(server, region string) []sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sample(nil), r.samples[recKey(server, region)]...)
}

// expect fails the test for every sample in [from, to) of region, on every
// server, that is not want, and returns how many samples it checked.
func (r *answerRecorder) expect(t *testing.T, servers []string, region, want string, from, to time.Time, why string) int {
	t.Helper()
	n, bad := 0, 0
	for _, s := range servers {
		for _, x := range r.series(s, region) {
			if x.at.Before(from) || !x.at.Before(to) {
				continue
			}
			n++
			if x.answer != want {
				if bad++; bad <= 5 {
					t.Errorf("%s: %s clients got %q at +%s, want %s (%s)", s, region, x.answer, x.at.Sub(from).Round(time.Millisecond), want, why)
				}
			}
		}
	}
	if bad > 5 {
		t.Errorf("... %d unexpected answers in all", bad)
	}
	if n == 0 {
		t.Errorf("no answers of %s recorded in the %s window (%s)", region, to.Sub(from), why)
	}
	return n
}

// expectSteady checks that every region got its healthyAnswers answer from
// every node throughout [from, to).
func (r *answerRecorder) expectSteady(t *testing.T, d *deployment, from, to time.Time, why string) {
	t.Helper()
	n := 0
	for _, reg := range testRegions {
		n += r.expect(t, d.dns, reg.name, healthyAnswers[reg.name], from, to, why)
	}
	t.Logf("%d answers over %s all unchanged (%s)", n, to.Sub(from).Round(time.Millisecond), why)
}

// changes returns the answer changes of a series: the first sample, then
// every sample that differs from the one before.
func changes(series []sample) []sample {
	var out []sample
	for _, x := range series {
		if len(out) == 0 || out[len(out)-1].answer != x.answer {
			out = append(out, x)
		}
	}
	return out
}

// sleepUntil sleeps until t.
func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

// signalAgents sends sig to every agent.
func (d *deployment) signalAgents(t *testing.T, sig syscall.Signal) {
	t.Helper()
	for name, a := range d.agents {
		if err := a.cmd.Process.Signal(sig); err != nil {
			t.Fatalf("signal %v to agent %s: %v", sig, name, err)
		}
	}
}

// TestMemberHang stops the us-east member with SIGSTOP for 10s (a hung
// server: connections are accepted by the kernel, nothing is answered, so
// probes time out instead of being refused). us-east clients must move to
// eu-west within fall×interval+timeout+1s, stay there while it hangs, and
// come back only after failback_hold once it resumes; the other regions
// never change.
func TestMemberHang(t *testing.T) {
	p := faultParams()
	watchStalls(t)
	d := deploy(t, p)
	d.waitAllFresh(t)
	rec := d.recordAll(t)
	bound := p.detection() + time.Second

	stopped := time.Now()
	begin := stopped
	d.members["cache-use"].Stop()
	for i, e := range d.waitAnswer(t, "us-east", addrEuw, stopped, 10*time.Second) {
		t.Logf("%s: failover seen %s after SIGSTOP, bound %s", d.dns[i], e.Round(time.Millisecond), bound)
		if e > bound {
			t.Errorf("%s failed over %s after SIGSTOP, beyond fall×interval+timeout+1s = %s", d.dns[i], e, bound)
		}
	}
	d.waitStatus(t, 5*time.Second, "cache-use down with timeouts", func(st *admin.Status) bool {
		m := memberIn(st, "cache-use")
		return m.Verdict == "down" && strings.Contains(vantageIn(m, "us-east").LastError, "timeout")
	})
	sleepUntil(stopped.Add(10 * time.Second))
	resumed := time.Now()
	d.members["cache-use"].Cont()

	// Back after the hold: not before, and not later than rise rounds, one
	// more round, the hold and slack.
	upper := p.failbackHold + time.Duration(p.rise+1)*p.interval + p.timeout + slack
	for i, e := range d.waitAnswer(t, "us-east", addrUse, resumed, upper+5*time.Second) {
		t.Logf("%s: failback seen %s after SIGCONT (hold %s, bound %s)", d.dns[i], e.Round(time.Millisecond), p.failbackHold, upper)
		if e < p.failbackHold {
			t.Errorf("%s failed back %s after SIGCONT, before failback_hold %s", d.dns[i], e, p.failbackHold)
		}
		if e > upper {
			t.Errorf("%s failed back %s after SIGCONT, beyond %s", d.dns[i], e, upper)
		}
	}
	rec.stop()
	end := time.Now()
	rec.expect(t, d.dns, "us-east", addrEuw, stopped.Add(bound), resumed.Add(p.failbackHold), "hung member, then its hold")
	for _, r := range []string{"eu-west", "ap-south"} {
		rec.expect(t, d.dns, r, healthyAnswers[r], begin, end, "other regions unaffected")
	}
	for _, s := range d.dns {
		if c := changes(rec.series(s, "us-east")); len(c) != 3 {
			t.Errorf("%s: us-east answers went %v, want exactly use → euw → use", s, c)
		}
	}
}

// pauser slows a member down with CLIENT PAUSE (Redis 7.0 pauses every
// client, probes included, for the duration; a command sent meanwhile
// waits until the pause ends): it pauses for pause, lets the member run
// for gap, and repeats. A probe round that meets a pause is delayed by up
// to pause (plus the member's cron period, see TestMemberSlow); a pause is
// never renewed while one is in force (a renewal would itself wait for it).
type pauser struct {
	cancel context.CancelFunc
	done   chan struct{}
	issued int
}

func startPauser(t *testing.T, r *testenv.Redis, pause, gap time.Duration) *pauser {
	ctx, cancel := context.WithCancel(context.Background())
	p := &pauser{cancel: cancel, done: make(chan struct{})}
	ms := strconv.FormatInt(pause.Milliseconds(), 10)
	go func() {
		defer close(p.done)
		for ctx.Err() == nil {
			if _, err := r.DoTimeout(time.Second, "CLIENT", "PAUSE", ms, "ALL"); err == nil {
				p.issued++
			}
			select {
			case <-ctx.Done():
			case <-time.After(pause + gap):
			}
		}
	}()
	t.Cleanup(p.stop)
	return p
}

// stop ends the loop; the last pause may still be in force for up to
// pause.
func (p *pauser) stop() {
	p.cancel()
	<-p.done
}

// TestMemberSlow slows the us-east member down, for every vantage, just
// under and just over the probe timeout (which bounds all the checks of a
// member in a round):
//
//   - stalls: the member itself stops serving for up to half the timeout
//     at a time (CLIENT PAUSE, renewed in a loop): no failover.
//   - steady latency of about half the timeout per round: no failover.
//   - steady latency of about twice the timeout per round: failover, no
//     flapping while it lasts, failback after the hold once it ends.
//
// Steady latency comes from the agents' proxies delaying the member's
// replies. CLIENT PAUSE cannot give it: a command that meets a pause waits
// only for the rest of it, so a pause of twice the timeout still lets about
// half the rounds pass, and DEBUG SLEEP is disabled by default on Redis 7.
func TestMemberSlow(t *testing.T) {
	p := faultParams()
	p.proxied = true
	watchStalls(t)
	d := deploy(t, p)
	d.waitAllFresh(t)
	member := d.members["cache-use"]
	delayReplies := func(delay time.Duration) {
		for _, r := range testRegions {
			d.proxy(t, r.name, "cache-use").Delay(delay)
		}
	}
	const window = 4 * time.Second

	t.Run("stalls of half the timeout", func(t *testing.T) {
		// Redis ends a pause in its cron, hz times a second (default 10):
		// at 100 a pause lasts what it says within 10ms, not 100ms.
		member.MustDo("CONFIG", "SET", "hz", "100")
		rec := d.recordAll(t)
		from := time.Now()
		pz := startPauser(t, member, p.timeout/2, p.timeout/2)
		// A client of the test's own measures the stalls the probes meet:
		// a PING that arrives during a pause waits for its end.
		var slowest time.Duration
		delayed, pings := 0, 0
		for deadline := from.Add(window); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			start := time.Now()
			if _, err := member.DoTimeout(time.Second, "PING"); err != nil {
				t.Errorf("PING during the stalls: %v", err)
				continue
			}
			took := time.Since(start)
			slowest, pings = max(slowest, took), pings+1
			if took > p.timeout/8 {
				delayed++
			}
		}
		pz.stop()
		rec.stop()
		to := time.Now()
		t.Logf("%d pauses of %s every %s; %d of %d PINGs delayed, slowest %s", pz.issued, p.timeout/2, p.timeout, delayed, pings, slowest.Round(time.Millisecond))
		if slowest < p.timeout/4 || delayed < pz.issued/2 {
			t.Errorf("the member did not stall: %d of %d PINGs took over %s, slowest %s", delayed, pings, p.timeout/8, slowest)
		}
		rec.expectSteady(t, d, from, to, "member stalling for up to half the timeout")
		d.expectVerdict(t, "cache-use", "up")
		time.Sleep(p.timeout) // the last pause ends
	})

	t.Run("steady latency of half the timeout", func(t *testing.T) {
		// A round of the default checks is four round trips (PING, ECHO,
		// CLUSTER SLOTS, the keyspace pipeline): a reply delay of an eighth
		// of the timeout makes it take about half the timeout.
		delay := p.timeout / 8
		rec := d.recordAll(t)
		from := time.Now()
		delayReplies(delay)
		sleepUntil(from.Add(window))
		rec.stop()
		rec.expectSteady(t, d, from, time.Now(), fmt.Sprintf("replies %s late", delay))
		d.expectVerdict(t, "cache-use", "up")
		// The vantages measured the delay: their fastest check took longer.
		for i, a := range d.admin {
			st, err := status(a)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range memberIn(st, "cache-use").Vantages {
				if rtt := time.Duration(v.RTTSeconds * float64(time.Second)); rtt < delay {
					t.Errorf("%s: vantage %s measured an RTT of %s to cache-use, below the %s delay", nodeName(i), v.Agent, rtt, delay)
				}
			}
		}
		delayReplies(0)
	})

	t.Run("steady latency of twice the timeout", func(t *testing.T) {
		delay := p.timeout / 2 // four round trips: twice the timeout
		rec := d.recordAll(t)
		from := time.Now()
		delayReplies(delay)
		bound := p.detection() + slack
		for i, e := range d.waitAnswer(t, "us-east", addrEuw, from, 10*time.Second) {
			t.Logf("%s: failover seen %s after the slowdown began, bound %s", d.dns[i], e.Round(time.Millisecond), bound)
			if e > bound {
				t.Errorf("%s failed over %s after the slowdown began, beyond %s", d.dns[i], e, bound)
			}
		}
		d.waitStatus(t, 5*time.Second, "cache-use down by timeouts", func(st *admin.Status) bool {
			m := memberIn(st, "cache-use")
			return m.Verdict == "down" && strings.Contains(vantageIn(m, "us-east").LastError, "timeout")
		})
		sleepUntil(from.Add(window))
		recovered := time.Now()
		delayReplies(0)
		upper := p.failbackHold + time.Duration(p.rise+1)*p.interval + p.timeout + slack
		for i, e := range d.waitAnswer(t, "us-east", addrUse, recovered, upper+5*time.Second) {
			t.Logf("%s: failback seen %s after the slowdown ended, bound %s", d.dns[i], e.Round(time.Millisecond), upper)
			if e < p.failbackHold {
				t.Errorf("%s failed back %s after the slowdown ended, before failback_hold %s", d.dns[i], e, p.failbackHold)
			}
			if e > upper {
				t.Errorf("%s failed back %s after the slowdown ended, beyond %s", d.dns[i], e, upper)
			}
		}
		rec.stop()
		rec.expect(t, d.dns, "us-east", addrEuw, from.Add(bound), recovered.Add(p.failbackHold), "too slow, then its hold")
		for _, r := range []string{"eu-west", "ap-south"} {
			rec.expect(t, d.dns, r, healthyAnswers[r], from, time.Now(), "other regions unaffected")
		}
	})
}

// expectVerdict checks member's verdict on every node.
func (d *deployment) expectVerdict(t *testing.T, member, want string) {
	t.Helper()
	for i, a := range d.admin {
		st, err := status(a)
		if err != nil {
			t.Fatal(err)
		}
		if m := memberIn(st, member); m.Verdict != want {
			t.Errorf("%s: %s is %s, want %s:\n%s", nodeName(i), member, m.Verdict, want, statusText(st))
		}
	}
}

// TestAgentPartition cuts one agent's network paths with in-test TCP
// proxies (each agent reaches every member and every node through a proxy
// of its own): first from one member only, then from every node. A
// minority vantage must change nothing.
func TestAgentPartition(t *testing.T) {
	p := faultParams()
	p.proxied = true
	watchStalls(t)
	d := deploy(t, p)
	d.waitAllFresh(t)

	t.Run("one agent cut off from one member", func(t *testing.T) {
		rec := d.recordAll(t)
		from := time.Now()
		cut := d.proxy(t, "eu-west", "cache-use")
		cut.Blackhole()
		// The eu-west vantage sees cache-use down; the other two see it up:
		// one down vote of three fresh is no majority.
		took := d.waitStatus(t, p.detection()+5*time.Second, "the eu-west vantage to see cache-use down", func(st *admin.Status) bool {
			m := memberIn(st, "cache-use")
			up, down, abstain := m.VantageCounts()
			return vantageIn(m, "eu-west").Verdict == "down" && up == 2 && down == 1 && abstain == 0
		})
		t.Logf("eu-west vantage down %s after the cut", took.Round(time.Millisecond))
		sleepUntil(time.Now().Add(3 * time.Second))
		for i, a := range d.admin {
			st, err := status(a)
			if err != nil {
				t.Fatal(err)
			}
			m := memberIn(st, "cache-use")
			up, down, abstain := m.VantageCounts()
			if m.Verdict != "up" || up != 2 || down != 1 || abstain != 0 || vantageIn(m, "eu-west").Verdict != "down" {
				t.Errorf("%s: want cache-use up with the eu-west vantage down and 2 up; got:\n%s", nodeName(i), statusText(st))
			}
			if !allUp(st) {
				t.Errorf("%s: a member is down:\n%s", nodeName(i), statusText(st))
			}
		}
		rec.stop()
		rec.expectSteady(t, d, from, time.Now(), "one vantage of three cut off from cache-use")

		cut.Heal()
		took = d.waitStatus(t, 10*time.Second, "the eu-west vantage to see cache-use up again", func(st *admin.Status) bool {
			return vantageIn(memberIn(st, "cache-use"), "eu-west").Verdict == "up"
		})
		t.Logf("eu-west vantage up again %s after the heal", took.Round(time.Millisecond))
	})

	t.Run("one agent cut off from every node", func(t *testing.T) {
		rec := d.recordAll(t)
		from := time.Now()
		for i := range d.dns {
			d.proxy(t, "eu-west", nodeName(i)).Blackhole()
		}
		took := d.waitStatus(t, p.staleAfter+5*time.Second, "the eu-west vantage to go stale", func(st *admin.Status) bool {
			for _, m := range st.Members {
				if vantageIn(m, "eu-west").Fresh || !vantageIn(m, "us-east").Fresh || !vantageIn(m, "ap-south").Fresh {
					return false
				}
			}
			return len(st.Members) == len(testRegions)
		})
		t.Logf("eu-west vantage stale %s after the cut (stale_after %s)", took.Round(time.Millisecond), p.staleAfter)
		// Its last report may have arrived up to an interval before the cut.
		if took < p.staleAfter-p.interval-100*time.Millisecond {
			t.Errorf("eu-west vantage stale %s after the cut, too long before stale_after %s", took, p.staleAfter)
		}
		sleepUntil(time.Now().Add(3 * time.Second))
		for i, a := range d.admin {
			st, err := status(a)
			if err != nil {
				t.Fatal(err)
			}
			if !allUp(st) {
				t.Errorf("%s: a member is down with one vantage absent:\n%s", nodeName(i), statusText(st))
			}
			for _, m := range st.Members {
				if v := vantageIn(m, "eu-west"); v.Fresh {
					t.Errorf("%s: eu-west vantage of %s is fresh while cut off", nodeName(i), m.Name)
				}
			}
		}
		rec.stop()
		rec.expectSteady(t, d, from, time.Now(), "one agent cut off from the nodes")

		healed := time.Now()
		for i := range d.dns {
			d.proxy(t, "eu-west", nodeName(i)).Heal()
		}
		d.waitAllFresh(t)
		t.Logf("every vantage fresh again %s after the heal", time.Since(healed).Round(time.Millisecond))
	})
}

// TestAllAgentsSilent stops every agent (SIGSTOP): with no fresh vantage
// the nodes must fail static — keep every verdict and answer — for as long
// as the silence lasts, even when a member dies meanwhile: the nodes have
// no information, so nothing changes (us-east clients keep getting the dead
// member until an agent speaks again). Once the agents resume, the dead
// member is detected as usual.
func TestAllAgentsSilent(t *testing.T) {
	p := faultParams()
	watchStalls(t)
	d := deploy(t, p)
	d.waitAllFresh(t)
	rec := d.recordAll(t)

	from := time.Now()
	d.signalAgents(t, syscall.SIGSTOP)
	t.Cleanup(func() { // before they are stopped with SIGTERM
		for _, a := range d.agents {
			_ = a.cmd.Process.Signal(syscall.SIGCONT)
		}
	})
	took := d.waitStatus(t, p.staleAfter+5*time.Second, "every vantage to go stale", func(st *admin.Status) bool {
		for _, m := range st.Members {
			if _, _, abstain := m.VantageCounts(); abstain != len(testRegions) {
				return false
			}
		}
		return len(st.Members) == len(testRegions)
	})
	t.Logf("every vantage stale %s after SIGSTOP", took.Round(time.Millisecond))
	sleepUntil(from.Add(p.staleAfter + 3*time.Second))

	killed := time.Now()
	d.members["cache-use"].Kill()
	sleepUntil(killed.Add(p.detection() + 3*time.Second))
	for i, a := range d.admin {
		st, err := status(a)
		if err != nil {
			t.Fatal(err)
		}
		if !allUp(st) {
			t.Errorf("%s: a verdict changed with no fresh vantage:\n%s", nodeName(i), statusText(st))
		}
	}
	resumed := time.Now()
	rec.expectSteady(t, d, from, resumed, "every agent silent; cache-use killed after stale_after+3s")

	d.signalAgents(t, syscall.SIGCONT)
	bound := p.detection() + slack
	for i, e := range d.waitAnswer(t, "us-east", addrEuw, resumed, 10*time.Second) {
		t.Logf("%s: failover seen %s after the agents resumed, bound %s", d.dns[i], e.Round(time.Millisecond), bound)
		if e > bound {
			t.Errorf("%s failed over %s after the agents resumed, beyond %s", d.dns[i], e, bound)
		}
	}
	rec.stop()
}

// TestReplicationStall runs the lag check with a replicator standing in for
// Active-Active replication. Replication to eu-west stalls: its member
// becomes lagging and eu-west clients move to the in-sync us-east member.
// The member then dies and restarts while replication is still stalled:
// it is up but still behind, so it gets no traffic back, for longer than
// the failback hold; once replication resumes and it catches up, it gets
// its traffic back after the hold.
func TestReplicationStall(t *testing.T) {
	p := faultParams()
	p.checks = "[ping, echo, keyspace, lag]"
	p.lagTolerance = 500 * time.Millisecond
	p.replicate = true
	watchStalls(t)
	d := deploy(t, p)
	d.waitAllFresh(t)
	d.waitStatus(t, 10*time.Second, "every member's lag known and in tolerance", func(st *admin.Status) bool {
		for _, m := range st.Members {
			if !m.LagKnown || m.Lagging {
				return false
			}
		}
		return len(st.Members) == len(testRegions)
	})
	rec := d.recordAll(t)
	begin := time.Now()

	stalled := time.Now()
	d.repl.pause("cache-euw", true)
	// The lag passes the tolerance after lag_tolerance, is read in the next
	// round, and acted on when its report arrives.
	bound := p.lagTolerance + p.interval + p.timeout + slack
	for i, e := range d.waitAnswer(t, "eu-west", addrUse, stalled, 10*time.Second) {
		t.Logf("%s: eu-west clients moved to us-east %s after replication stalled, bound %s", d.dns[i], e.Round(time.Millisecond), bound)
		// The member's copy was up to a heartbeat interval (100ms) and a
		// copy period (20ms) old when the copies stopped.
		if early := p.lagTolerance - 100*time.Millisecond - 20*time.Millisecond - 50*time.Millisecond; e < early {
			t.Errorf("%s moved eu-west clients %s after the stall, before the lag could exceed lag_tolerance %s", d.dns[i], e, p.lagTolerance)
		}
		if e > bound {
			t.Errorf("%s moved eu-west clients %s after the stall, beyond %s", d.dns[i], e, bound)
		}
	}
	d.waitStatus(t, 5*time.Second, "cache-euw up and lagging", func(st *admin.Status) bool {
		m := memberIn(st, "cache-euw")
		return m.Verdict == "up" && m.Lagging
	})

	// Kill and restart it while still stalled: it must serve a failback
	// hold, which may not start while it is behind.
	d.members["cache-euw"].Kill()
	d.waitStatus(t, p.detection()+5*time.Second, "cache-euw down", func(st *admin.Status) bool {
		return memberIn(st, "cache-euw").Verdict == "down"
	})
	d.members["cache-euw"].Restart()
	restarted := time.Now()
	d.waitStatus(t, 10*time.Second, "cache-euw up again, still lagging", func(st *admin.Status) bool {
		m := memberIn(st, "cache-euw")
		return m.Verdict == "up" && m.Lagging && !m.Settled
	})
	sleepUntil(restarted.Add(p.failbackHold + 2*time.Second))
	for i, a := range d.admin {
		st, err := status(a)
		if err != nil {
			t.Fatal(err)
		}
		if m := memberIn(st, "cache-euw"); m.Verdict != "up" || !m.Lagging || m.Settled {
			t.Errorf("%s: cache-euw should be up, lagging and unsettled a hold after its restart:\n%s", nodeName(i), statusText(st))
		}
	}

	resumed := time.Now()
	d.repl.pause("cache-euw", false)
	upper := p.failbackHold + 2*p.interval + p.timeout + slack
	for i, e := range d.waitAnswer(t, "eu-west", addrEuw, resumed, upper+5*time.Second) {
		t.Logf("%s: eu-west clients back on cache-euw %s after replication resumed (hold %s, bound %s)", d.dns[i], e.Round(time.Millisecond), p.failbackHold, upper)
		if e < p.failbackHold {
			t.Errorf("%s failed back %s after replication resumed, before failback_hold %s", d.dns[i], e, p.failbackHold)
		}
		if e > upper {
			t.Errorf("%s failed back %s after replication resumed, beyond %s", d.dns[i], e, upper)
		}
	}
	d.waitStatus(t, 5*time.Second, "cache-euw in sync and settled", func(st *admin.Status) bool {
		m := memberIn(st, "cache-euw")
		return m.Verdict == "up" && !m.Lagging && m.Settled
	})
	rec.stop()
	end := time.Now()
	rec.expect(t, d.dns, "eu-west", addrUse, stalled.Add(bound), resumed.Add(p.failbackHold), "eu-west member lagging, then dead, then behind")
	for _, r := range []string{"us-east", "ap-south"} {
		rec.expect(t, d.dns, r, healthyAnswers[r], begin, end, "other regions unaffected")
	}
}

// TestFlappingMember flaps the us-east member (SIGSTOP 1s, SIGCONT 1s) for
// 20s while a client polls every 50ms. With failback_hold longer than the
// flap period, clients must see at most one failover and no failback
// while it flaps, then one failback once it has been stable for the hold.
func TestFlappingMember(t *testing.T) {
	p := faultParams()
	if p.failbackHold <= 2*time.Second {
		t.Fatalf("failback_hold %s must exceed the 2s flap period", p.failbackHold)
	}
	watchStalls(t)
	d := deploy(t, p)
	d.waitAllFresh(t)
	rec := d.recordAll(t)
	member := d.members["cache-use"]

	begin := time.Now()
	var stable time.Time // the last SIGCONT: stable from then on
	for i := 0; i < 10; i++ {
		member.Stop()
		sleepUntil(begin.Add(time.Duration(2*i+1) * time.Second))
		member.Cont()
		stable = time.Now()
		sleepUntil(begin.Add(time.Duration(2*i+2) * time.Second))
	}
	upper := p.failbackHold + time.Duration(p.rise+1)*p.interval + p.timeout + slack
	for i, e := range d.waitAnswer(t, "us-east", addrUse, stable, upper+5*time.Second) {
		t.Logf("%s: failback seen %s after the last SIGCONT (hold %s, bound %s)", d.dns[i], e.Round(time.Millisecond), p.failbackHold, upper)
		if e < p.failbackHold {
			t.Errorf("%s failed back %s after the last SIGCONT, before failback_hold %s", d.dns[i], e, p.failbackHold)
		}
		if e > upper {
			t.Errorf("%s failed back %s after the last SIGCONT, beyond %s", d.dns[i], e, upper)
		}
	}
	rec.stop()
	for _, s := range d.dns {
		c := changes(rec.series(s, "us-east"))
		var during []string
		for _, x := range c {
			during = append(during, fmt.Sprintf("%s@+%s", x.answer, x.at.Sub(begin).Round(10*time.Millisecond)))
		}
		series := rec.series(s, "us-east")
		t.Logf("%s: us-east answers (%d samples, last at +%s): %s", s, len(series), series[len(series)-1].at.Sub(begin).Round(time.Millisecond), strings.Join(during, " → "))
		// Expected: use (before), euw (at most one failover), use (the
		// failback, after the flapping ended).
		failovers, failbacks := 0, 0
		for j := 1; j < len(c); j++ {
			switch c[j].answer {
			case addrEuw:
				failovers++
			case addrUse:
				failbacks++
				if c[j].at.Before(stable) {
					t.Errorf("%s: failed back to the flapping member at +%s, while it was still flapping", s, c[j].at.Sub(begin))
				}
			default:
				t.Errorf("%s: unexpected us-east answer %q at +%s", s, c[j].answer, c[j].at.Sub(begin))
			}
		}
		if failovers > 1 || failbacks != failovers {
			t.Errorf("%s: %d failovers and %d failbacks, want at most one failover, and a failback for it after the flapping: the flapping reached clients", s, failovers, failbacks)
		}
	}
	for _, r := range []string{"eu-west", "ap-south"} {
		rec.expect(t, d.dns, r, healthyAnswers[r], begin, time.Now(), "other regions unaffected")
	}
}

// dnsperfStats are the figures of a dnsperf run.
type dnsperfStats struct {
	sent, completed, lost int
	rcodes                map[string]int
}

var (
	dnsperfSent   = regexp.MustCompile(`Queries sent:\s+(\d+)`)
	dnsperfDone   = regexp.MustCompile(`Queries completed:\s+(\d+)`)
	dnsperfLost   = regexp.MustCompile(`Queries lost:\s+(\d+)`)
	dnsperfRcodes = regexp.MustCompile(`Response codes:\s+(.*)`)
	dnsperfRcode  = regexp.MustCompile(`([A-Z]+) (\d+) \(`)
)

func parseDnsperf(out string) (dnsperfStats, error) {
	st := dnsperfStats{rcodes: map[string]int{}}
	for _, f := range []struct {
		re *regexp.Regexp
		v  *int
	}{{dnsperfSent, &st.sent}, {dnsperfDone, &st.completed}, {dnsperfLost, &st.lost}} {
		m := f.re.FindStringSubmatch(out)
		if m == nil {
			return st, fmt.Errorf("no %q in dnsperf output", f.re)
		}
		*f.v, _ = strconv.Atoi(m[1])
	}
	if m := dnsperfRcodes.FindStringSubmatch(out); m != nil {
		for _, rc := range dnsperfRcode.FindAllStringSubmatch(m[1], -1) {
			st.rcodes[rc[1]], _ = strconv.Atoi(rc[2])
		}
	}
	return st, nil
}

// TestLoadDuringFaults runs dnsperf at 2000 queries/s against one node
// while the us-east member (the default region's, which dnsperf's clients
// get) is killed and restarted three times. No query may get SERVFAIL, at
// most 0.01% may be lost (unanswered for 5s, dnsperf's default), and a sampler polling every 20ms as a us-east
// client must never get the dead member later than the detection bound
// after its kill. The run lasts 20s, or 60s with AAGTM_LONG_TESTS=1.
func TestLoadDuringFaults(t *testing.T) {
	dnsperf := requireTool(t, "dnsperf", "dnsperf")
	duration := 20 * time.Second
	if os.Getenv("AAGTM_LONG_TESTS") == "1" {
		duration = 60 * time.Second
	}
	const qps = 2000
	p := faultParams()
	watchStalls(t)
	d := deploy(t, p)
	d.waitAllFresh(t)
	server := d.dns[0]
	host, port := splitHostPort(t, server)
	queries := writeFile(t, t.TempDir(), "queries.txt", "cache.gtm.test A\n")

	rec := d.recordAnswers(t, 20*time.Millisecond, []string{server}, []string{"us-east"})
	ctx, cancel := context.WithTimeout(context.Background(), duration+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, dnsperf, "-s", host, "-p", port, "-d", queries,
		"-l", strconv.Itoa(int(duration.Seconds())), "-Q", strconv.Itoa(qps), "-c", "4", "-t", "5")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dnsperf: %v", err)
	}
	perfDone := make(chan error, 1)
	go func() { perfDone <- cmd.Wait() }()

	// Three kill/restart cycles spread over the run: dead long enough to
	// be detected, up long enough to serve the failback hold.
	bound := p.detection() + slack
	dead := bound + time.Second
	cycle := duration / 3
	type outage struct{ killed, restarted time.Time }
	var outages []outage
	member := d.members["cache-use"]
	for i := 0; i < 3; i++ {
		sleepUntil(begin.Add(time.Duration(i)*cycle + 500*time.Millisecond))
		o := outage{killed: time.Now()}
		member.Kill()
		sleepUntil(o.killed.Add(dead))
		member.Restart()
		o.restarted = time.Now()
		outages = append(outages, o)
	}
	if err := <-perfDone; err != nil {
		t.Fatalf("dnsperf: %v\n%s", err, out.String())
	}
	rec.stop()

	st, err := parseDnsperf(out.String())
	if err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	t.Logf("dnsperf over %s: sent %d, completed %d, lost %d, response codes %v", duration, st.sent, st.completed, st.lost, st.rcodes)
	if want := int(0.8 * qps * duration.Seconds()); st.sent < want {
		t.Errorf("dnsperf sent %d queries, want at least %d: the load was not applied", st.sent, want)
	}
	if st.lost*10000 > st.sent {
		t.Errorf("%d of %d queries lost, more than 0.01%%", st.lost, st.sent)
	}
	for rc, n := range st.rcodes {
		if rc != "NOERROR" {
			t.Errorf("%d responses with %s, want only NOERROR", n, rc)
		}
	}
	if st.rcodes["NOERROR"] != st.completed {
		t.Errorf("NOERROR %d of %d completed", st.rcodes["NOERROR"], st.completed)
	}

	series := rec.series(server, "us-east")
	errs := 0
	for _, x := range series {
		if x.answer != addrUse && x.answer != addrEuw {
			if errs++; errs <= 5 {
				t.Errorf("sampler got %q at +%s", x.answer, x.at.Sub(begin).Round(time.Millisecond))
			}
		}
	}
	for i, o := range outages {
		movedAt := time.Time{}
		for _, x := range series {
			if x.at.Before(o.killed) || !x.at.Before(o.restarted) {
				continue
			}
			if x.answer == addrEuw && movedAt.IsZero() {
				movedAt = x.at
			}
			if x.answer == addrUse && x.at.Sub(o.killed) > bound {
				t.Errorf("kill %d: sampler got the dead member %s after the kill, beyond the bound %s", i+1, x.at.Sub(o.killed).Round(time.Millisecond), bound)
			}
		}
		if movedAt.IsZero() {
			t.Errorf("kill %d: the sampler never saw the failover while the member was dead", i+1)
		} else {
			t.Logf("kill %d: sampler saw the failover %s after the kill (bound %s)", i+1, movedAt.Sub(o.killed).Round(time.Millisecond), bound)
		}
	}
	t.Logf("sampler: %d answers, us-east changes %d", len(series), len(changes(series))-1)
}
