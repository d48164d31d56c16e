package probes

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/internal/testenv"
)

// redisChecks are the checks that talk to Redis.
var redisChecks = []config.Check{
	config.CheckPing, config.CheckEcho, config.CheckKeyspace, config.CheckLag, config.CheckCommand,
}

// checkSettings returns probe settings for running single checks.
func checkSettings(timeout time.Duration) config.Probes {
	p := testenv.ReportConfig().Probes
	p.Timeout = timeout
	p.Command = config.CommandCheck{Args: []string{"ECHO", "hello"}, Expect: "hello"}
	return p
}

// runCheck runs one check of kind c against url the way the agent does
// (fresh target, context bounded by the timeout) and returns the result
// with its duration.
func runCheck(t *testing.T, c config.Check, url string, p config.Probes) result {
	t.Helper()
	tg := soloTarget(t, testenv.Member("m1", use, url), p)
	ck, err := newCheck(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.Timeout)
	defer cancel()
	pr := &probe{t: tg, c: tg.redis(), agentID: agentU, region: use, seq: 1, settings: &p, hbRegions: []string{euw, use}}
	start := time.Now()
	r := ck.run(ctx, pr)
	r.duration = time.Since(start)
	return r
}

func TestChecksPassOnHealthyServer(t *testing.T) {
	srv := testenv.StartRedis(t)
	p := checkSettings(time.Second)
	for _, c := range redisChecks {
		t.Run(string(c), func(t *testing.T) {
			r := runCheck(t, c, srv.URL(), p)
			if !r.ok() {
				t.Fatalf("%s failed on a healthy server: %s (%s)", c, r.err, r.outcome)
			}
		})
	}
}

func TestChecksFailOnBrokenServer(t *testing.T) {
	const timeout = 150 * time.Millisecond
	p := checkSettings(timeout)

	killed := testenv.StartRedis(t)
	killed.Kill()
	stopped := testenv.StartRedis(t)
	stopped.Stop()
	locked := testenv.StartRedis(t, testenv.WithPassword("right"))
	wrongPass := strings.Replace(locked.URL(), ":right@", ":wrong@", 1)
	noPass := "redis://" + locked.Addr()

	cases := []struct {
		name string
		url  string
		want Outcome
		// maxDur bounds each check's duration.
		maxDur time.Duration
	}{
		{"killed", killed.URL(), OutcomeUnreachable, timeout},
		{"stopped", stopped.URL(), OutcomeTimeout, timeout + roundSlack},
		{"wrong password", wrongPass, OutcomeAuth, timeout},
		{"no password", noPass, OutcomeAuth, timeout},
	}
	for _, tc := range cases {
		for _, c := range redisChecks {
			t.Run(tc.name+"/"+string(c), func(t *testing.T) {
				r := runCheck(t, c, tc.url, p)
				if r.ok() {
					t.Fatalf("%s passed against a %s server", c, tc.name)
				}
				if r.outcome != tc.want {
					t.Errorf("outcome = %s (%s), want %s", r.outcome, r.err, tc.want)
				}
				if r.duration > tc.maxDur {
					t.Errorf("took %s, want at most %s", r.duration, tc.maxDur)
				}
				if tc.want == OutcomeTimeout && r.duration < timeout-10*time.Millisecond {
					t.Errorf("timed out after %s, before the %s timeout", r.duration, timeout)
				}
			})
		}
	}
}

func TestChecksFailWhileLoading(t *testing.T) {
	srv := testenv.StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	ctx := context.Background()
	pipe := c.Pipeline()
	for i := 0; i < 1000; i++ {
		// ~1 KiB of incompressible value per key, so that the server
		// processes events after every key while it loads.
		value := make([]byte, 1024)
		_, _ = rand.Read(value)
		pipe.Set(ctx, fmt.Sprintf("key:%d", i), value, 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// key-load-delay (µs per key) makes loading 1000 keys take about a
	// second; processing events every KiB lets the server answer LOADING
	// meanwhile.
	srv.Restart("--key-load-delay", "1000", "--loading-process-events-interval-bytes", "1024")
	p := checkSettings(300 * time.Millisecond)
	// ECHO is served while loading; the custom command must touch data.
	p.Command = config.CommandCheck{Args: []string{"GET", "key:1"}}
	for _, ck := range redisChecks {
		t.Run(string(ck), func(t *testing.T) {
			r := runCheck(t, ck, srv.URL(), p)
			if r.outcome != OutcomeLoading {
				t.Fatalf("outcome = %s (%q), want loading", r.outcome, r.err)
			}
		})
	}
	srv.WaitReady()
	if r := runCheck(t, config.CheckPing, srv.URL(), p); !r.ok() {
		t.Fatalf("ping after loading: %s", r.err)
	}
}

func TestCommandCheckWrongReply(t *testing.T) {
	srv := testenv.StartRedis(t)
	srv.MustDo("SET", "mode", "maintenance")
	p := checkSettings(time.Second)
	cases := []struct {
		name   string
		cmd    config.CommandCheck
		want   Outcome
		errHas string
	}{
		{"expected reply", config.CommandCheck{Args: []string{"GET", "mode"}, Expect: "maintenance"}, OutcomePass, ""},
		{"wrong reply", config.CommandCheck{Args: []string{"GET", "mode"}, Expect: "serving"}, OutcomeWrongReply, `got "maintenance", want "serving"`},
		{"nil reply", config.CommandCheck{Args: []string{"GET", "nokey"}, Expect: "x"}, OutcomeWrongReply, `got "(nil)"`},
		{"integer reply", config.CommandCheck{Args: []string{"EVAL", "return 7", "0"}, Expect: "7"}, OutcomePass, ""},
		{"error reply", config.CommandCheck{Args: []string{"NOSUCHCOMMAND"}, Expect: "x"}, OutcomeError, "unknown command"},
		{"any reply", config.CommandCheck{Args: []string{"DBSIZE"}}, OutcomePass, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p.Command = tc.cmd
			r := runCheck(t, config.CheckCommand, srv.URL(), p)
			if r.outcome != tc.want || !strings.Contains(r.err, tc.errHas) {
				t.Fatalf("got %s %q, want %s containing %q", r.outcome, r.err, tc.want, tc.errHas)
			}
		})
	}
}

// redisErr is a Redis error reply, as go-redis returns them.
type redisErr string

func (e redisErr) Error() string { return string(e) }
func (redisErr) RedisError()     {}

func TestClassify(t *testing.T) {
	cases := []struct {
		err  error
		want Outcome
	}{
		{nil, OutcomePass},
		{redisErr("LOADING Redis is loading the dataset in memory"), OutcomeLoading},
		{fmt.Errorf("GET: %w", redisErr("LOADING Redis is loading the dataset in memory")), OutcomeLoading},
		{redisErr("NOAUTH Authentication required."), OutcomeAuth},
		{fmt.Errorf("failed to authenticate: %w", redisErr("WRONGPASS invalid username-password pair")), OutcomeAuth},
		{redisErr("NOPERM this user has no permissions"), OutcomeAuth},
		{redisErr("ERR unknown command"), OutcomeError},
		{redisErr("READONLY You can't write against a read only replica."), OutcomeError},
		{context.DeadlineExceeded, OutcomeTimeout},
		{os.ErrDeadlineExceeded, OutcomeTimeout},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, OutcomeUnreachable},
		{io.EOF, OutcomeUnreachable},
	}
	for _, tc := range cases {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("classify(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

func TestKeyspaceCoversEveryClusterShard(t *testing.T) {
	cl := testenv.StartCluster(t, 3)
	p := checkSettings(time.Second)
	r := runCheck(t, config.CheckKeyspace, cl.URL(), p)
	if !r.ok() {
		t.Fatalf("keyspace on a 3-shard cluster: %s", r.err)
	}
	for i, n := range cl.Nodes {
		keys, ok := n.MustDo("KEYS", probeKeyPrefix+"*").([]any)
		if !ok || len(keys) != 1 {
			t.Fatalf("shard %d (%s) holds probe keys %v, want exactly one", i, n.Addr(), keys)
		}
		k := keys[0].(string)
		if s := keySlot(k); s < cl.Ranges[i][0] || s > cl.Ranges[i][1] {
			t.Errorf("shard %d: key %s in slot %d, outside its range %v", i, k, s, cl.Ranges[i])
		}
		if ttl := n.MustDo("PTTL", k).(int64); ttl <= 0 || ttl > p.KeyTTL.Milliseconds() {
			t.Errorf("shard %d: key %s has PTTL %d, want (0, %d]", i, k, ttl, p.KeyTTL.Milliseconds())
		}
	}
	// The lag check reads heartbeats of regions living in other slots
	// through redirects.
	if r := runCheck(t, config.CheckLag, cl.URL(), p); !r.ok() {
		t.Fatalf("lag on a cluster: %s", r.err)
	}
}

func TestKeyspaceSpreadsKeysWithoutClusterAPI(t *testing.T) {
	srv := testenv.StartRedis(t)
	p := checkSettings(time.Second)
	p.KeyspaceKeys = 8
	if r := runCheck(t, config.CheckKeyspace, srv.URL(), p); !r.ok() {
		t.Fatalf("keyspace: %s", r.err)
	}
	keys := srv.MustDo("KEYS", probeKeyPrefix+"*").([]any)
	if len(keys) != 8 {
		t.Fatalf("%d probe keys, want 8", len(keys))
	}
	// One key in each eighth of the slot space: a sharding proxy sends them
	// to every shard.
	seen := map[int]bool{}
	for _, k := range keys {
		seen[keySlot(k.(string))*8/numSlots] = true
	}
	if len(seen) != 8 {
		t.Fatalf("keys cover %d of 8 slot-space eighths", len(seen))
	}
}

func TestKeyspaceSkippedInReadOnlyMode(t *testing.T) {
	p := checkSettings(time.Second)
	p.ReadOnly = true
	if !(keyspaceCheck{}).skip(&probe{settings: &p}) {
		t.Fatal("keyspace not skipped in read-only mode")
	}
	srv := testenv.StartRedis(t)
	tg := soloTarget(t, testenv.Member("m1", use, srv.URL()), p)
	if r := (lagCheck{}).run(context.Background(), &probe{t: tg, c: tg.redis(), agentID: agentU, region: use, settings: &p, hbRegions: []string{use}}); !r.ok() {
		t.Fatal(r.err)
	}
	if n := srv.MustDo("DBSIZE").(int64); n != 0 {
		t.Fatalf("read-only lag check wrote %d keys", n)
	}
}

func TestRESTCheck(t *testing.T) {
	var gotQuery, gotPath, gotUser string
	status := http.StatusOK
	body := ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotQuery = r.URL.Path, r.URL.RawQuery
		gotUser, _, _ = r.BasicAuth()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	defer srv.Close()

	cases := []struct {
		name   string
		status int
		body   string
		tol    time.Duration
		want   Outcome
		errHas string
		query  string
	}{
		{"available", 200, `{}`, 0, OutcomePass, "", "availability_lag_tolerance_ms=100&extend_check=lag"},
		{"custom tolerance", 200, `{}`, 250 * time.Millisecond, OutcomePass, "", "availability_lag_tolerance_ms=250&extend_check=lag"},
		{"no quorum", 503, `{"error_code":"no_quorum","description":"Master shard has no quorum"}`, 0, OutcomeUnavailable,
			"HTTP 503: no_quorum: Master shard has no quorum", ""},
		{"endpoint unavailable", 503, `{"error_code":"bdb_endpoint_unavailable","description":"Endpoint not available"}`, 0,
			OutcomeUnavailable, "bdb_endpoint_unavailable", ""},
		{"lagging", 503, `{"error_code":"bdb_availability_lag_exceeded"}`, 0, OutcomeUnavailable, "lag_exceeded", ""},
		{"unauthorized", 401, ``, 0, OutcomeAuth, "HTTP 401", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body = tc.status, tc.body
			m := testenv.Member("m1", use, "redis://127.0.0.1:1")
			m.REST = config.REST{URL: strings.Replace(srv.URL, "http://", "http://admin:pw@", 1), BDB: 7, LagTolerance: tc.tol}
			p := checkSettings(time.Second)
			tg := soloTarget(t, m, p)
			r := (restCheck{}).run(context.Background(), &probe{t: tg, settings: &p})
			if r.outcome != tc.want || !strings.Contains(r.err, tc.errHas) {
				t.Fatalf("got %s %q, want %s containing %q", r.outcome, r.err, tc.want, tc.errHas)
			}
			if gotPath != "/v1/local/bdbs/7/endpoint/availability" {
				t.Errorf("path = %s", gotPath)
			}
			if tc.query != "" && gotQuery != tc.query {
				t.Errorf("query = %s, want %s", gotQuery, tc.query)
			}
			if gotUser != "admin" {
				t.Errorf("basic auth user = %q, want admin", gotUser)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		m := testenv.Member("m1", use, "redis://127.0.0.1:1")
		m.REST = config.REST{URL: "http://" + deadAddr(t), BDB: 1}
		p := checkSettings(time.Second)
		tg := soloTarget(t, m, p)
		r := (restCheck{}).run(context.Background(), &probe{t: tg, settings: &p})
		if r.outcome != OutcomeUnreachable {
			t.Fatalf("got %s %q, want unreachable", r.outcome, r.err)
		}
	})
	if !(restCheck{}).skip(&probe{t: &target{}}) {
		t.Error("rest check not skipped for a member without a REST URL")
	}
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestSlots(t *testing.T) {
	if got := crc16("123456789"); got != 0x31C3 {
		t.Fatalf("crc16(123456789) = %#x, want 0x31c3", got)
	}
	// Hash tags from the Redis Cluster spec.
	if keySlot("{user1000}.following") != keySlot("{user1000}.followers") {
		t.Error("keys with the same hash tag have different slots")
	}
	if keySlot("foo{}{bar}") != int(crc16("foo{}{bar}")%numSlots) {
		t.Error("empty hash tag must hash the whole key")
	}
	if keySlot("foo{{bar}}zap") != int(crc16("{bar")%numSlots) {
		t.Error("hash tag is the text between the first { and the next }")
	}
	for s := 0; s < numSlots; s++ {
		if got := keySlot(probeKeyPrefix + "{" + slotTag(s) + "}:agent{x}"); got != s {
			t.Fatalf("key for slot %d hashes to %d", s, got)
		}
	}
	if got := spreadSlots(4); fmt.Sprint(got) != "[2048 6144 10240 14336]" {
		t.Errorf("spreadSlots(4) = %v", got)
	}
}
