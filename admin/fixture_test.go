package admin_test

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/aagtm/aagtm/admin"
	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/policy"
)

const testConfig = `
zone:
  name: gtm.test.
  ns: [{name: ns1.gtm.test., address: 127.0.0.1}]
regions:
  us-east: {subnets: [10.1.0.0/16]}
  eu-west: {subnets: [10.2.0.0/16]}
default_region: us-east
databases:
  cache:
    members:
      - {name: cache-use, region: us-east, addresses: [10.1.0.10], redis: "redis://10.1.0.10:6379"}
      - {name: cache-euw, region: eu-west, addresses: [10.2.0.10], redis: "redis://10.2.0.10:6379"}
  sessions:
    mode: failover
    members:
      - {name: sessions-use, region: us-east, addresses: [10.1.0.20], redis: "redis://10.1.0.20:6379"}
probes:
  checks: [ping]
nodes:
  - {name: ns1, report: 127.0.0.1:7411}
security:
  insecure: true
`

const testToken = "s3cret-admin-token"

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testCfg(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(testConfig))
	if err != nil {
		t.Fatalf("parse test config: %v", err)
	}
	return cfg
}

// testSnapshot is a hand-built decision: cache-euw failed (one vantage down,
// one stale) and cache's eu-west clients failed over to cache-use.
func testSnapshot() *policy.Snapshot {
	failover := policy.Event{
		Kind: policy.Failover, Database: "cache", Region: "eu-west", From: "cache-euw", To: "cache-use",
		At: t0.Add(-time.Minute), Detection: 2100 * time.Millisecond,
		RPOEstimate: 12 * time.Millisecond, RPOKnown: true, Reason: "cache-euw down (1/1 fresh vantages)",
	}
	return &policy.Snapshot{
		Generated: t0,
		Serial:    7,
		Members: map[string]*policy.MemberStatus{
			"cache-use": {
				Name: "cache-use", Database: "cache", Region: "us-east", Verdict: policy.Up, Since: t0.Add(-time.Hour),
				Lag: 12 * time.Millisecond, LagKnown: true, LagBySource: map[string]time.Duration{"eu-west": 12 * time.Millisecond},
				Settled: true, HealthySince: t0.Add(-time.Hour),
				Vantages: []policy.VantageState{
					{Agent: "eu-west", Region: "eu-west", Verdict: policy.Up, Fresh: true, Voting: true, LastSeen: t0, LastSeq: 41, Passes: 40, RTT: 80 * time.Millisecond},
					{Agent: "us-east", Region: "us-east", Verdict: policy.Up, Fresh: true, Voting: true, LastSeen: t0, LastSeq: 42, Passes: 41, RTT: 400 * time.Microsecond},
				},
			},
			"cache-euw": {
				Name: "cache-euw", Database: "cache", Region: "eu-west", Verdict: policy.Down, Since: t0.Add(-time.Minute),
				Voting: 1, DownVotes: 1, DownOutcome: policy.OutcomeTimeout, Reason: "down: timeout (1/1 vantages)",
				Vantages: []policy.VantageState{
					{Agent: "eu-west", Region: "eu-west", Verdict: policy.Down, Fresh: false, LastSeen: t0.Add(-time.Minute), LastSeq: 30},
					{Agent: "us-east", Region: "us-east", Verdict: policy.Down, Fresh: true, Voting: true, LastOutcome: policy.OutcomeTimeout, LastSeen: t0, LastSeq: 42, Failures: 5, LastError: "ping: i/o timeout"},
				},
			},
			"sessions-use": {
				Name: "sessions-use", Database: "sessions", Region: "us-east", Verdict: policy.Up, Settled: true,
				Vantages: []policy.VantageState{
					{Agent: "us-east", Region: "us-east", Verdict: policy.Up, Fresh: true, Voting: true, LastSeen: t0, LastSeq: 42, RTT: time.Millisecond},
				},
			},
		},
		Hosts: map[string]*policy.HostAnswers{
			"cache.gtm.test.": {Database: "cache", Host: "cache.gtm.test.", ByRegion: map[string]*policy.Answer{
				"us-east": {Records: []policy.Record{{Kind: policy.RecordA, Member: "cache-use", Addr: netip.MustParseAddr("10.1.0.10")}},
					TTL: 5 * time.Second, Members: []string{"cache-use"}, Reason: "cache-use: nearest healthy member", Since: t0.Add(-time.Hour), RegionDependent: true},
				"eu-west": {Records: []policy.Record{{Kind: policy.RecordA, Member: "cache-use", Addr: netip.MustParseAddr("10.1.0.10")}},
					TTL: 5 * time.Second, Members: []string{"cache-use"}, Reason: "cache-use: cache-euw is down", Since: t0.Add(-time.Minute), RegionDependent: true},
			}},
			"sessions.gtm.test.": {Database: "sessions", Host: "sessions.gtm.test.", ByRegion: map[string]*policy.Answer{
				"us-east": {Records: []policy.Record{{Kind: policy.RecordA, Member: "sessions-use", Addr: netip.MustParseAddr("10.1.0.20")}},
					TTL: 5 * time.Second, Members: []string{"sessions-use"}, Reason: "sessions-use: first in order"},
				"eu-west": {Records: []policy.Record{{Kind: policy.RecordA, Member: "sessions-use", Addr: netip.MustParseAddr("10.1.0.20")}},
					TTL: 5 * time.Second, Members: []string{"sessions-use"}, Reason: "sessions-use: first in order"},
			}},
		},
		Events: []policy.Event{failover},
		Recent: []policy.Event{failover},
	}
}

// fakeBackend stands in for the node (internal/node composes the real
// engine, DNS and ingest, too much for these tests): it serves a
// hand-built snapshot and records overrides, validating names against the
// config the way a node must.
type fakeBackend struct {
	mu    sync.Mutex
	cfg   *config.Config
	snap  *policy.Snapshot
	ov    policy.Overrides
	ready bool
	calls []string
}

func newFakeBackend(t *testing.T) *fakeBackend {
	return &fakeBackend{
		cfg:   testCfg(t),
		snap:  testSnapshot(),
		ov:    policy.Overrides{Drained: map[string]bool{}, Forced: map[string]string{}},
		ready: true,
	}
}

func (f *fakeBackend) Snapshot() *policy.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap
}

func (f *fakeBackend) setSnapshot(s *policy.Snapshot) {
	f.mu.Lock()
	f.snap = s
	f.mu.Unlock()
}

func (f *fakeBackend) Config() *config.Config { return f.cfg }

func (f *fakeBackend) Overrides() policy.Overrides {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := policy.Overrides{Drained: map[string]bool{}, Forced: map[string]string{}}
	for k, v := range f.ov.Drained {
		o.Drained[k] = v
	}
	for k, v := range f.ov.Forced {
		o.Forced[k] = v
	}
	return o
}

func (f *fakeBackend) Ready() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ready
}

func (f *fakeBackend) setReady(r bool) {
	f.mu.Lock()
	f.ready = r
	f.mu.Unlock()
}

func (f *fakeBackend) record(call string) {
	f.mu.Lock()
	f.calls = append(f.calls, call)
	f.mu.Unlock()
}

func (f *fakeBackend) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeBackend) Drain(member string, _ admin.Change) error {
	if _, _, ok := f.cfg.Member(member); !ok {
		return fmt.Errorf("%w: member %q", admin.ErrNotFound, member)
	}
	f.record("drain " + member)
	f.mu.Lock()
	f.ov.Drained[member] = true
	f.mu.Unlock()
	return nil
}

func (f *fakeBackend) Undrain(member string, _ admin.Change) error {
	if _, _, ok := f.cfg.Member(member); !ok {
		return fmt.Errorf("%w: member %q", admin.ErrNotFound, member)
	}
	f.record("undrain " + member)
	f.mu.Lock()
	delete(f.ov.Drained, member)
	f.mu.Unlock()
	return nil
}

func (f *fakeBackend) Force(db, member string, _ admin.Change) error {
	if _, ok := f.cfg.Database(db); !ok {
		return fmt.Errorf("%w: database %q", admin.ErrNotFound, db)
	}
	if _, d, ok := f.cfg.Member(member); !ok || d.Name != db {
		return fmt.Errorf("%w: %q is not a member of database %s", admin.ErrBadRequest, member, db)
	}
	f.record("force " + db + " " + member)
	f.mu.Lock()
	f.ov.Forced[db] = member
	f.mu.Unlock()
	return nil
}

func (f *fakeBackend) Unforce(db string, _ admin.Change) error {
	if _, ok := f.cfg.Database(db); !ok {
		return fmt.Errorf("%w: database %q", admin.ErrNotFound, db)
	}
	f.record("unforce " + db)
	f.mu.Lock()
	delete(f.ov.Forced, db)
	f.mu.Unlock()
	return nil
}

// errOf drops the Result of an override call.
func errOf(_ *admin.Result, err error) error { return err }
