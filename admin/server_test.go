package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aagtm/aagtm/admin"
)

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t *testing.T) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "test", Level: hclog.Debug, Output: logWriter{t}})
}

// startServer serves a fake backend's admin API on a loopback httptest
// server and returns both.
func startServer(t *testing.T, token string, insecure bool) (*fakeBackend, *admin.Server, *httptest.Server) {
	t.Helper()
	b := newFakeBackend(t)
	reg := prometheus.NewRegistry()
	s := admin.NewServer(b, "ns1", token, insecure, reg, testLogger(t))
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return b, s, ts
}

// do sends a call as the CLI would: mutating calls (any method but GET)
// with Content-Type: application/json.
func do(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	return doHeaders(t, method, url, token, body, nil)
}

// doHeaders is do with headers replaced: "Host" sets the Host header, an
// empty value removes a header.
func doHeaders(t *testing.T, method, url, token, body string, hdr map[string]string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		switch {
		case k == "Host":
			req.Host = v
		case v == "":
			req.Header.Del(k)
		default:
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

func TestStatusJSONFields(t *testing.T) {
	_, _, ts := startServer(t, testToken, false)
	code, body := do(t, http.MethodGet, ts.URL+"/v1/status", "", "")
	if code != http.StatusOK {
		t.Fatalf("GET /v1/status = %d %s", code, body)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("status is not JSON: %v\n%s", err, body)
	}
	hasKeys := func(what string, m any, keys ...string) {
		t.Helper()
		obj, ok := m.(map[string]any)
		if !ok {
			t.Fatalf("%s is %T, want an object", what, m)
		}
		for _, k := range keys {
			if _, ok := obj[k]; !ok {
				t.Errorf("%s has no %q: %v", what, k, obj)
			}
		}
	}
	first := func(what string, v any) any {
		t.Helper()
		arr, ok := v.([]any)
		if !ok || len(arr) == 0 {
			t.Fatalf("%s is %v, want a non-empty array", what, v)
		}
		return arr[0]
	}
	hasKeys("status", doc, "node", "generated", "serial", "config_hash", "ready", "members", "answers", "events", "overrides")
	m := first("members", doc["members"])
	hasKeys("member", m, "name", "database", "region", "verdict", "since", "lag_seconds", "lag_known",
		"lag_by_source_seconds", "lagging", "drained", "forced", "settled", "healthy_since", "vantages")
	v := first("vantages", m.(map[string]any)["vantages"])
	hasKeys("vantage", v, "agent", "region", "verdict", "fresh", "last_seen", "last_seq", "passes", "failures", "rtt_seconds")
	hasKeys("answer", first("answers", doc["answers"]), "database", "host", "region", "members", "records", "ttl_seconds", "reason", "since")
	hasKeys("event", first("events", doc["events"]), "kind", "database", "region", "from", "to", "at",
		"detection_seconds", "rpo_estimate_seconds", "rpo_known", "reason")
	hasKeys("overrides", doc["overrides"], "drained", "forced")

	// The same document through the typed client.
	c, err := admin.NewClient("ns1", ts.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Node != "ns1" || st.Serial != 7 || !st.Generated.Equal(t0) || !st.Ready || st.Zone != "gtm.test." {
		t.Errorf("header = node %q serial %d generated %v ready %v zone %q", st.Node, st.Serial, st.Generated, st.Ready, st.Zone)
	}
	var names []string
	for _, m := range st.Members {
		names = append(names, m.Name)
	}
	// Config order: databases by name, members as in the file.
	if want := []string{"cache-use", "cache-euw", "sessions-use"}; !slices.Equal(names, want) {
		t.Errorf("members = %v, want %v", names, want)
	}
	euw := st.Members[1]
	if euw.Verdict != "down" || euw.Vantages[1].LastError != "ping: i/o timeout" || euw.Vantages[1].Failures != 5 {
		t.Errorf("cache-euw = %+v", euw)
	}
	if euw.Reason != "down: timeout (1/1 vantages)" || euw.DownOutcome != "timeout" || euw.Voting != 1 || euw.DownVotes != 1 ||
		euw.FailStatic || !euw.Vantages[1].Voting || euw.Vantages[1].LastOutcome != "timeout" || euw.Vantages[0].Voting {
		t.Errorf("cache-euw reason, outcome and votes = %+v", euw)
	}
	if up, down, abstain := euw.VantageCounts(); up != 0 || down != 1 || abstain != 1 {
		t.Errorf("cache-euw vantages = %d/%d/%d, want 0/1/1", up, down, abstain)
	}
	use := st.Members[0]
	if !use.LagKnown || use.LagSeconds != 0.012 || use.LagBySourceSeconds["eu-west"] != 0.012 {
		t.Errorf("cache-use lag = %v known %v by source %v", use.LagSeconds, use.LagKnown, use.LagBySourceSeconds)
	}
	if d, ok := use.MinRTT(); !ok || d != 400*time.Microsecond {
		t.Errorf("cache-use min RTT = %v %v, want 400µs", d, ok)
	}
	if len(st.Answers) != 4 || st.Answers[0].Database != "cache" || st.Answers[0].Region != "eu-west" ||
		st.Answers[0].Records[0] != "A 10.1.0.10" || st.Answers[0].TTLSeconds != 5 {
		t.Errorf("answers = %+v", st.Answers)
	}
	if e := st.Events[0]; e.Kind != "failover" || e.DetectionSeconds != 2.1 || !e.RPOKnown || e.RPOEstimateSeconds != 0.012 {
		t.Errorf("event = %+v", e)
	}
}

func TestStatusBeforeFirstSnapshot(t *testing.T) {
	b, _, ts := startServer(t, "", false)
	b.setSnapshot(nil)
	b.setReady(false)
	code, body := do(t, http.MethodGet, ts.URL+"/v1/status", "", "")
	if code != http.StatusOK {
		t.Fatalf("GET /v1/status = %d %s", code, body)
	}
	var st admin.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if st.Ready || st.Serial != 0 || st.Members == nil || len(st.Members) != 0 {
		t.Errorf("status without snapshot = %+v", st)
	}
}

func TestMutations(t *testing.T) {
	tests := []struct {
		name      string
		method    string
		path      string
		token     string
		body      string
		header    map[string]string // replaces do's headers (see doHeaders)
		wantCode  int
		wantCall  string // the backend call made; "" for none
		wantInErr string
	}{
		{name: "drain", method: "POST", path: "/v1/members/cache-euw/drain", token: testToken, wantCode: 200, wantCall: "drain cache-euw"},
		{name: "undrain", method: "POST", path: "/v1/members/cache-euw/undrain", token: testToken, wantCode: 200, wantCall: "undrain cache-euw"},
		{name: "force", method: "POST", path: "/v1/databases/cache/force", token: testToken, body: `{"member":"cache-use"}`, wantCode: 200, wantCall: "force cache cache-use"},
		{name: "unforce", method: "DELETE", path: "/v1/databases/cache/force", token: testToken, wantCode: 200, wantCall: "unforce cache"},
		{name: "no token", method: "POST", path: "/v1/members/cache-euw/drain", wantCode: 401, wantInErr: "Bearer"},
		{name: "wrong token", method: "POST", path: "/v1/members/cache-euw/drain", token: "guess", wantCode: 401, wantInErr: "wrong admin token"},
		{name: "token prefix only", method: "POST", path: "/v1/members/cache-euw/drain", token: testToken[:4], wantCode: 401},
		{name: "wrong token force", method: "DELETE", path: "/v1/databases/cache/force", token: "guess", wantCode: 401},
		{name: "unknown member", method: "POST", path: "/v1/members/nope/drain", token: testToken, wantCode: 404, wantInErr: `member "nope"`},
		{name: "unknown member undrain", method: "POST", path: "/v1/members/nope/undrain", token: testToken, wantCode: 404},
		{name: "unknown database", method: "POST", path: "/v1/databases/nope/force", token: testToken, body: `{"member":"cache-use"}`, wantCode: 404},
		{name: "unknown database unforce", method: "DELETE", path: "/v1/databases/nope/force", token: testToken, wantCode: 404},
		{name: "bad JSON", method: "POST", path: "/v1/databases/cache/force", token: testToken, body: `{"member":`, wantCode: 400, wantInErr: "JSON"},
		{name: "no body", method: "POST", path: "/v1/databases/cache/force", token: testToken, wantCode: 400},
		{name: "missing member", method: "POST", path: "/v1/databases/cache/force", token: testToken, body: `{}`, wantCode: 400, wantInErr: "member is missing"},
		{name: "unknown field", method: "POST", path: "/v1/databases/cache/force", token: testToken, body: `{"membr":"cache-use"}`, wantCode: 400},
		{name: "two objects", method: "POST", path: "/v1/databases/cache/force", token: testToken, body: `{"member":"cache-use"}{}`, wantCode: 400},
		{name: "member of another database", method: "POST", path: "/v1/databases/cache/force", token: testToken, body: `{"member":"sessions-use"}`, wantCode: 400, wantInErr: "not a member"},
		{name: "GET is not a mutation", method: "GET", path: "/v1/members/cache-euw/drain", token: testToken, wantCode: 405},
		{name: "drain with reason and for", method: "POST", path: "/v1/members/cache-euw/drain", token: testToken, body: `{"reason":"maintenance","for":"30m"}`, wantCode: 200, wantCall: "drain cache-euw"},
		{name: "for not a duration", method: "POST", path: "/v1/members/cache-euw/drain", token: testToken, body: `{"for":"soon"}`, wantCode: 400, wantInErr: `for "soon": want a positive duration`},
		{name: "for negative", method: "POST", path: "/v1/databases/cache/force", token: testToken, body: `{"member":"cache-use","for":"-1m"}`, wantCode: 400, wantInErr: "positive duration"},
		{name: "for on a removal", method: "POST", path: "/v1/members/cache-euw/undrain", token: testToken, body: `{"for":"1m"}`, wantCode: 400, wantInErr: "a removal does not expire"},
		{name: "reason too long", method: "POST", path: "/v1/members/cache-euw/drain", token: testToken, body: `{"reason":"` + strings.Repeat("x", 501) + `"}`, wantCode: 400, wantInErr: "reason is 501 bytes"},
		// The nodes' exchange is a mutation like any other.
		{name: "exchange without token", method: "POST", path: "/v1/overrides/exchange", body: `{"from":"ns2","records":[]}`, wantCode: 401, wantInErr: "Bearer"},
		{name: "exchange with a wrong token", method: "POST", path: "/v1/overrides/exchange", token: "guess", body: `{"from":"ns2","records":[]}`, wantCode: 401, wantInErr: "wrong admin token"},
		{name: "exchange on a backend without a set", method: "POST", path: "/v1/overrides/exchange", token: testToken, body: `{"from":"ns2","records":[]}`, wantCode: 404, wantInErr: "no replicated override set"},
		// CSRF: a cross-site form or fetch sends only "simple" content types
		// without a preflight.
		{name: "CSRF text/plain", method: "POST", path: "/v1/members/cache-euw/drain", token: testToken, header: map[string]string{"Content-Type": "text/plain"}, wantCode: 415, wantInErr: "Content-Type: application/json"},
		{name: "CSRF form", method: "POST", path: "/v1/databases/cache/force", token: testToken, body: "member=cache-use", header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, wantCode: 415},
		{name: "CSRF multipart", method: "POST", path: "/v1/members/cache-euw/undrain", token: testToken, header: map[string]string{"Content-Type": "multipart/form-data; boundary=x"}, wantCode: 415},
		{name: "no Content-Type", method: "DELETE", path: "/v1/databases/cache/force", token: testToken, header: map[string]string{"Content-Type": ""}, wantCode: 415, wantInErr: "Content-Type none"},
		{name: "JSON with charset", method: "POST", path: "/v1/members/cache-euw/drain", token: testToken, header: map[string]string{"Content-Type": "application/json; charset=utf-8"}, wantCode: 200, wantCall: "drain cache-euw"},
		// DNS rebinding: the browser sends the attacker's name as Host.
		{name: "rebinding foreign Host", method: "POST", path: "/v1/members/cache-euw/drain", token: testToken, header: map[string]string{"Host": "evil.example.com:8053"}, wantCode: 403, wantInErr: `Host "evil.example.com" is not an address or configured name`},
		{name: "rebinding foreign IP-like name", method: "POST", path: "/v1/members/cache-euw/drain", token: testToken, header: map[string]string{"Host": "127.0.0.1.evil.example.com"}, wantCode: 403},
		{name: "Host not on this machine", method: "POST", path: "/v1/members/cache-euw/drain", token: testToken, header: map[string]string{"Host": "203.0.113.9:8053"}, wantCode: 403},
		{name: "Host localhost", method: "POST", path: "/v1/members/cache-euw/drain", token: testToken, header: map[string]string{"Host": "localhost:8053"}, wantCode: 200, wantCall: "drain cache-euw"},
		{name: "Host zone ns name", method: "POST", path: "/v1/members/cache-euw/drain", token: testToken, header: map[string]string{"Host": "NS1.gtm.test.:8053"}, wantCode: 200, wantCall: "drain cache-euw"},
		{name: "Host node name", method: "POST", path: "/v1/members/cache-euw/drain", token: testToken, header: map[string]string{"Host": "ns1"}, wantCode: 200, wantCall: "drain cache-euw"},
		{name: "Host IPv6 loopback", method: "POST", path: "/v1/members/cache-euw/drain", token: testToken, header: map[string]string{"Host": "[::1]:8053"}, wantCode: 200, wantCall: "drain cache-euw"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, _, ts := startServer(t, testToken, false)
			code, body := doHeaders(t, tc.method, ts.URL+tc.path, tc.token, tc.body, tc.header)
			if code != tc.wantCode {
				t.Fatalf("%s %s = %d %s, want %d", tc.method, tc.path, code, body, tc.wantCode)
			}
			calls := b.Calls()
			switch {
			case tc.wantCall == "" && len(calls) > 0:
				t.Errorf("backend called %v, want no call", calls)
			case tc.wantCall != "" && !slices.Equal(calls, []string{tc.wantCall}):
				t.Errorf("backend calls = %v, want [%s]", calls, tc.wantCall)
			}
			if code == 200 {
				var res admin.Result
				if err := json.Unmarshal([]byte(body), &res); err != nil || res.Node != "ns1" {
					t.Errorf("result = %s (%v)", body, err)
				}
				return
			}
			var eb struct{ Error, Code string }
			if err := json.Unmarshal([]byte(body), &eb); err != nil || eb.Error == "" {
				if code != 405 {
					t.Errorf("error body = %q (%v), want JSON with an error", body, err)
				}
			}
			if !strings.Contains(eb.Error, tc.wantInErr) {
				t.Errorf("error = %q, want it to mention %q", eb.Error, tc.wantInErr)
			}
		})
	}
}

func TestMutationResultShowsOverrides(t *testing.T) {
	_, _, ts := startServer(t, testToken, false)
	c, err := admin.NewClient("ns1", ts.URL, testToken)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := c.Mutate(ctx, http.MethodPost, "/v1/members/cache-euw/drain", nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Node != "ns1" || res.Action != "drain" || !slices.Equal(res.Overrides.Drained, []string{"cache-euw"}) {
		t.Errorf("drain result = %+v", res)
	}
	if err := errOf(c.Force(ctx, "sessions", "sessions-use", admin.Change{})); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Overrides.Forced["sessions"] != "sessions-use" {
		t.Errorf("status overrides = %+v", st.Overrides)
	}
	for _, m := range st.Members {
		if m.Name == "cache-euw" && !m.Drained {
			t.Error("status does not show cache-euw drained")
		}
		if m.Name == "sessions-use" && !m.Forced {
			t.Error("status does not show sessions-use forced")
		}
	}
	if err := errOf(c.Unforce(ctx, "sessions", admin.Change{})); err != nil {
		t.Fatal(err)
	}
	if err := errOf(c.Undrain(ctx, "cache-euw", admin.Change{})); err != nil {
		t.Fatal(err)
	}
	if st, err = c.Status(ctx); err != nil || len(st.Overrides.Drained) != 0 || len(st.Overrides.Forced) != 0 {
		t.Errorf("overrides after undrain and unforce = %+v, %v", st.Overrides, err)
	}
}

func TestClientErrorsMatchSentinels(t *testing.T) {
	_, _, ts := startServer(t, testToken, false)
	ctx := context.Background()
	good, _ := admin.NewClient("ns1", ts.URL, testToken)
	bad, _ := admin.NewClient("ns1", ts.URL, "wrong")

	err := errOf(good.Drain(ctx, "nope", admin.Change{}))
	var apiErr *admin.APIError
	if !errors.Is(err, admin.ErrNotFound) || !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "not_found" {
		t.Errorf("drain unknown = %v, want ErrNotFound (404)", err)
	}
	if err := errOf(good.Force(ctx, "cache", "", admin.Change{})); !errors.Is(err, admin.ErrBadRequest) {
		t.Errorf("force empty member = %v, want ErrBadRequest", err)
	}
	if err := errOf(bad.Drain(ctx, "cache-use", admin.Change{})); !errors.Is(err, admin.ErrUnauthorized) {
		t.Errorf("drain with wrong token = %v, want ErrUnauthorized", err)
	}
}

func TestNoTokenRefusesMutationsUnlessInsecure(t *testing.T) {
	for _, tc := range []struct {
		name     string
		insecure bool
		want     int
	}{
		{"secure", false, http.StatusForbidden},
		{"insecure", true, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, ts := startServer(t, "", tc.insecure)
			if code, body := do(t, "POST", ts.URL+"/v1/members/cache-use/drain", "", ""); code != tc.want {
				t.Errorf("drain = %d %s, want %d", code, body, tc.want)
			}
		})
	}
}

// nonLoopbackIP returns an address of one of the machine's interfaces that
// is not loopback, or skips the test when there is none.
func nonLoopbackIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
			return ipn.IP.String()
		}
	}
	t.Skip("this machine has no non-loopback IPv4 address to listen on")
	return ""
}

// TestInsecureOpensMutationsOnlyOnLoopback serves one API on loopback and
// on an interface address: without a token, security.insecure opens drain
// on the first only; with a token both take it.
func TestInsecureOpensMutationsOnlyOnLoopback(t *testing.T) {
	ip := nonLoopbackIP(t)
	for _, tc := range []struct {
		name   string
		host   string
		token  string
		want   int
		wantIn string
	}{
		{"loopback without token", "127.0.0.1", "", http.StatusOK, ""},
		{"interface without token", ip, "", http.StatusForbidden, "security.insecure opens mutations only on loopback and this call arrived on " + ip},
		{"interface with token", ip, testToken, http.StatusOK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newFakeBackend(t)
			s := admin.NewServer(b, "ns1", tc.token, true, nil, testLogger(t))
			ln, err := net.Listen("tcp", net.JoinHostPort(tc.host, "0"))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Serve(ctx, ln) }()
			t.Cleanup(func() { cancel(); <-done })
			code, body := do(t, "POST", "http://"+ln.Addr().String()+"/v1/members/cache-use/drain", tc.token, "")
			if code != tc.want || !strings.Contains(body, tc.wantIn) {
				t.Fatalf("drain on %s = %d %s, want %d mentioning %q", ln.Addr(), code, body, tc.want, tc.wantIn)
			}
			if drained := slices.Contains(b.Calls(), "drain cache-use"); drained != (tc.want == http.StatusOK) {
				t.Errorf("backend calls = %v after %d", b.Calls(), code)
			}
		})
	}
}

// TestHealthAndReadiness: /readyz follows the backend and shutdown, and
// aagtm_node_ready is 1 exactly when /readyz answers 200.
func TestHealthAndReadiness(t *testing.T) {
	b, s, ts := startServer(t, testToken, false)
	reg := prometheus.NewRegistry()
	admin.NewReadyMetric(reg, s.Ready)
	check := func(path string, want int) {
		t.Helper()
		if code, body := do(t, "GET", ts.URL+path, "", ""); code != want {
			t.Errorf("GET %s = %d %q, want %d", path, code, body, want)
		}
		if path != "/readyz" {
			return
		}
		wantGauge := 0.0
		if want == http.StatusOK {
			wantGauge = 1
		}
		mfs, err := reg.Gather()
		if err != nil || len(mfs) != 1 || mfs[0].GetName() != "aagtm_node_ready" {
			t.Fatalf("gather = %v, %v; want aagtm_node_ready alone", mfs, err)
		}
		if got := mfs[0].GetMetric()[0].GetGauge().GetValue(); got != wantGauge {
			t.Errorf("aagtm_node_ready = %v while /readyz answers %d, want %v", got, want, wantGauge)
		}
	}
	b.setReady(false)
	check("/readyz", 503)
	check("/healthz", 200)
	b.setReady(true)
	check("/readyz", 200)
	s.SetShuttingDown()
	check("/readyz", 503)
	check("/healthz", 200)
}

func TestServeShutsDownGracefully(t *testing.T) {
	b := newFakeBackend(t)
	s := admin.NewServer(b, "ns1", testToken, false, nil, testLogger(t))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()

	c, _ := admin.NewClient("ns1", ln.Addr().String(), "")
	if ok, err := c.Ready(context.Background()); err != nil || !ok {
		t.Fatalf("ready = %v, %v", ok, err)
	}
	// nil registry: no /metrics.
	if code, _ := do(t, "GET", c.URL()+"/metrics", "", ""); code != 404 {
		t.Errorf("GET /metrics without registry = %d, want 404", code)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after cancel = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := c.Ready(context.Background()); err == nil {
		t.Error("listener still answers after shutdown")
	}
}
