package admin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aagtm/aagtm/admin"
)

// TestPageFiles: the status page and its assets are served from the
// binary, open to anyone, with a policy that forbids inline and foreign
// scripts.
func TestPageFiles(t *testing.T) {
	_, _, ts := startServer(t, "secret", false)
	cases := []struct {
		path, contentType, contains string
	}{
		{"/", "text/html", `src="/page/page.js"`},
		{"/page/page.js", "javascript", "/v1/status/stream"},
		{"/page/page.css", "text/css", "@media"},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			code, body := do(t, http.MethodGet, ts.URL+c.path, "", "")
			if code != http.StatusOK || !strings.Contains(body, c.contains) {
				t.Fatalf("GET %s = %d, body lacks %q", c.path, code, c.contains)
			}
			resp, err := http.Get(ts.URL + c.path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, c.contentType) {
				t.Errorf("Content-Type = %q, want %s", ct, c.contentType)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
				t.Errorf("Content-Security-Policy = %q, want default-src 'self'", csp)
			}
		})
	}
	if code, _ := do(t, http.MethodGet, ts.URL+"/page/missing.js", "", ""); code != http.StatusNotFound {
		t.Errorf("GET /page/missing.js = %d, want 404", code)
	}
}

// TestStatusStream: the stream sends the status document at once, then a
// new one when the node's view changes (here a drain), without a token.
func TestStatusStream(t *testing.T) {
	b, _, ts := startServer(t, "secret", false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/v1/status/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type = %q, want text/event-stream", ct)
	}
	rd := bufio.NewReader(resp.Body)
	next := func() *admin.Status {
		t.Helper()
		var event string
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				t.Fatalf("read stream: %v", err)
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				if event != "status" {
					t.Fatalf("data for event %q, want status", event)
				}
				var st admin.Status
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &st); err != nil {
					t.Fatalf("event data is not a status: %v", err)
				}
				return &st
			}
		}
	}
	first := next()
	if first.Node != "ns1" || len(first.Members) == 0 || len(first.Overrides.Drained) != 0 {
		t.Fatalf("first event: node %q, %d members, drained %v", first.Node, len(first.Members), first.Overrides.Drained)
	}
	start := time.Now()
	if err := b.Drain("cache-use", admin.Change{Who: "local"}); err != nil {
		t.Fatal(err)
	}
	second := next()
	if len(second.Overrides.Drained) != 1 || second.Overrides.Drained[0] != "cache-use" {
		t.Fatalf("after a drain the stream sent drained %v, want [cache-use]", second.Overrides.Drained)
	}
	t.Logf("change reached the stream in %v", time.Since(start).Round(time.Millisecond))
}
