package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aagtm/aagtm/admin"
	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/internal/testenv"
	"github.com/aagtm/aagtm/overrides"
	"github.com/aagtm/aagtm/policy"
)

// adminClient calls the fixture node's admin API over HTTP (insecure:
// mutations open on loopback).
func (f *fixture) adminClient(t *testing.T) *admin.Client {
	t.Helper()
	c, err := admin.NewClient("ns1", f.node.AdminAddr(), "")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fixture) status(t *testing.T) *admin.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	st, err := f.adminClient(t).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// metric returns the line of /metrics that starts with name.
func (f *fixture) metric(t *testing.T, name string) string {
	t.Helper()
	resp, err := http.Get("http://" + f.node.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, name+" ") {
			return l
		}
	}
	return ""
}

// A drain that cannot be saved is answered 500 naming the file and the
// cause, is not applied (status, DNS) and is not there after a restart.
func TestStateSaveFailureRefusesOverride(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(t *testing.T) (state string, fix func())
		wantCause string
	}{
		{
			name: "state path under a file",
			setup: func(t *testing.T) (string, func()) {
				file := filepath.Join(t.TempDir(), "not-a-dir")
				if err := os.WriteFile(file, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				return filepath.Join(file, "ns1.state"), func() { os.Remove(file) }
			},
			wantCause: "not a directory",
		},
		{
			name: "read-only folder",
			setup: func(t *testing.T) (string, func()) {
				if os.Geteuid() == 0 {
					t.Skip("root writes into read-only folders: run as another user to test this case")
				}
				dir := filepath.Join(t.TempDir(), "ro")
				if err := os.Mkdir(dir, 0o500); err != nil {
					t.Fatal(err)
				}
				return filepath.Join(dir, "ns1.state"), func() { os.Chmod(dir, 0o700) }
			},
			wantCause: "permission denied",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			state, fix := tc.setup(t)
			f := newFixture(t, state)
			east := "10.1.0.1"
			testenv.WaitFor(t, 5*time.Second, "east answer", func() bool { return f.answer(t, east) == "127.0.0.31" })

			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			err := errOf(f.adminClient(t).Drain(ctx, "cache-e", admin.Change{}))
			var apiErr *admin.APIError
			if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusInternalServerError ||
				!strings.Contains(apiErr.Message, state) || !strings.Contains(apiErr.Message, tc.wantCause) {
				t.Fatalf("drain = %v, want HTTP 500 naming %s and %q", err, state, tc.wantCause)
			}
			if f.node.Overrides().Drained["cache-e"] {
				t.Error("the unsaved drain is applied in memory")
			}
			if got := f.answer(t, east); got != "127.0.0.31" {
				t.Errorf("after the refused drain east gets %s, want 127.0.0.31", got)
			}
			st := f.status(t)
			if st.State == nil || st.State.SaveFailures == 0 || !strings.Contains(st.State.LastSaveError, tc.wantCause) || len(st.Overrides.Drained) != 0 {
				t.Errorf("status state = %+v, overrides %+v: want the save failure shown and no drain", st.State, st.Overrides)
			}
			if m := f.metric(t, "aagtm_node_state_save_failures_total"); m == "" || strings.HasSuffix(m, " 0") {
				t.Errorf("metric = %q, want failures counted", m)
			}
			var out bytes.Buffer
			if err := admin.RenderStatus(&out, st); err != nil || !strings.Contains(out.String(), "STATE FILE NOT SAVED") {
				t.Errorf("aagtm status does not show the failure:\n%s", out.String())
			}

			// Restarted with a usable path, the node has no drain.
			f.stop(t)
			fix()
			f.start(t)
			if f.node.Overrides().Drained["cache-e"] {
				t.Error("the refused drain is there after a restart")
			}
			testenv.WaitFor(t, 5*time.Second, "east answer after restart", func() bool { return f.answer(t, east) == "127.0.0.31" })
		})
	}
}

// An unusable state file is moved aside byte for byte, what it held is
// reported, status shows it across restarts until acknowledged, and the
// new state file never replaces it.
func TestUnusableStateFileKeptAsideUntilAcknowledged(t *testing.T) {
	tests := []struct {
		name     string
		damage   func(t *testing.T, state string, saved []byte)
		wantErr  string
		wantLost string
	}{
		{"truncated", func(t *testing.T, state string, saved []byte) {
			writeFile(t, state, saved[:bytes.Index(saved, []byte(`"engine"`))+12])
		}, "corrupt", "drain of cache-e"},
		{"not JSON", func(t *testing.T, state string, _ []byte) { writeFile(t, state, []byte("{not json")) }, "corrupt", "no drain or force readable"},
		{"newer version", func(t *testing.T, state string, saved []byte) {
			writeFile(t, state, bytes.Replace(saved, []byte(`"version": 2`), []byte(`"version": 9`), 1))
		}, "version 9", "drain of cache-e"},
		{"unreadable: a folder", func(t *testing.T, state string, _ []byte) {
			if err := os.Remove(state); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(state, 0o700); err != nil {
				t.Fatal(err)
			}
		}, "is a directory", "no drain or force readable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			state := filepath.Join(dir, "ns1.state")
			f := newFixture(t, state)
			if err := f.node.Drain("cache-e", admin.Change{}); err != nil {
				t.Fatal(err)
			}
			f.stop(t)
			saved, err := os.ReadFile(state)
			if err != nil {
				t.Fatal(err)
			}
			tc.damage(t, state, saved)
			damaged, _ := os.ReadFile(state) // nil for the folder

			f.start(t)
			if f.node.Overrides().Drained["cache-e"] {
				t.Fatal("the unusable state file was applied")
			}
			c := f.status(t).State
			if c == nil || c.Corrupt == nil {
				t.Fatalf("status state = %+v, want the unusable file reported", c)
			}
			if !strings.Contains(c.Corrupt.Error, tc.wantErr) || !strings.Contains(c.Corrupt.Lost, tc.wantLost) ||
				!strings.HasPrefix(c.Corrupt.MovedTo, state+".corrupt-") {
				t.Errorf("corrupt = %+v, want error %q, lost %q, moved to %s.corrupt-*", c.Corrupt, tc.wantErr, tc.wantLost, state)
			}
			aside := c.Corrupt.MovedTo
			if fi, err := os.Stat(aside); err != nil {
				t.Fatalf("moved-aside file: %v", err)
			} else if !fi.IsDir() {
				if got, _ := os.ReadFile(aside); !bytes.Equal(got, damaged) {
					t.Errorf("moved-aside file differs from the damaged one")
				}
			}
			if m := f.metric(t, "aagtm_node_state_corrupt"); m != "aagtm_node_state_corrupt 1" {
				t.Errorf("metric = %q, want 1", m)
			}
			// New state is written to the path, not over the kept file, and
			// the report survives a restart.
			if err := f.node.Drain("cache-w", admin.Change{}); err != nil {
				t.Fatal(err)
			}
			f.stop(t)
			f.start(t)
			if st := f.status(t); st.State == nil || st.State.Corrupt == nil || st.State.Corrupt.MovedTo != aside {
				t.Fatalf("after restart status state = %+v, want the unacknowledged report kept", st.State)
			}
			if !f.node.Overrides().Drained["cache-w"] {
				t.Error("the drain made after the corrupt file was not saved")
			}

			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			if err := f.adminClient(t).AckCorruptState(ctx); err != nil {
				t.Fatal(err)
			}
			f.stop(t)
			f.start(t)
			if st := f.status(t); st.State == nil || st.State.Corrupt != nil {
				t.Errorf("after ack and restart status state = %+v, want no report", st.State)
			}
			if _, err := os.Stat(aside); err != nil {
				t.Errorf("the moved-aside file is gone: %v", err)
			}
		})
	}
}

// salvageOverrides reads drains and forces up to the first damaged byte,
// from version 2 files (records) and version 1 files (maps).
func TestSalvageOverrides(t *testing.T) {
	stamp := overrides.Stamp{Wall: 1, Node: "ns1"}
	full, err := json.MarshalIndent(&persisted{Version: stateVersion, Node: "ns1", Overrides: []overrides.Record{
		{Kind: overrides.Drain, Target: "a", Stamp: stamp, Who: "local"},
		{Kind: overrides.Drain, Target: "b", Stamp: stamp, Who: "local"},
		{Kind: overrides.Drain, Target: "c", Removed: true, Stamp: stamp, Who: "local"},
		{Kind: overrides.Force, Target: "db", Member: "a", Stamp: stamp, Who: "local"},
	}}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	v1, err := json.MarshalIndent(map[string]any{"version": 1, "node": "ns1",
		"overrides": policy.Overrides{Drained: map[string]bool{"a": true, "b": true}, Forced: map[string]string{"db": "a"}}}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	cut := bytes.Index(full, []byte(`"target": "b"`)) + 8
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"whole", full, "drain of a, drain of b, force of db to a ("},
		{"cut in the second drain", full[:cut], "drain of a (as far"},
		{"version 1", v1, "drain of a, drain of b, force of db to a ("},
		{"version 1 cut", v1[:bytes.Index(v1, []byte(`"b": true`))+3], "drain of a (as far"},
		{"empty", nil, "no drain or force readable"},
		{"garbage", []byte("\x00\x01"), "no drain or force readable"},
	}
	for _, tc := range tests {
		if got := salvageOverrides(tc.data); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: salvage = %q, want prefix %q", tc.name, got, tc.want)
		}
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// errOf drops the Result of an override call.
func errOf(_ *admin.Result, err error) error { return err }

// With nodes[].admin_tls the node serves its admin API over HTTPS only,
// and the CLI's client, verifying with admin_tls.ca, drains through it.
func TestAdminOverTLS(t *testing.T) {
	cfg, err := config.Parse([]byte(fmt.Sprintf(fixtureYAML, "redis://127.0.0.1:1", "redis://127.0.0.1:2", testenv.FreePort(t, "127.0.0.1"))))
	if err != nil {
		t.Fatal(err)
	}
	ca := testenv.NewCA(t, "admin-ca")
	certFile, keyFile := ca.Server(t, "ns1")
	cfg.Nodes[0].AdminTLS = config.AdminTLS{Cert: certFile, Key: keyFile, CA: ca.Path}
	n, err := New(cfg, "ns1", logger(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-n.Started()

	self := cfg.Nodes[0]
	self.Admin = n.AdminAddr()
	res := admin.FanOut(context.Background(), []config.Node{self}, "", 0, func(ctx context.Context, _ int, c *admin.Client) error {
		if !strings.HasPrefix(c.URL(), "https://") {
			t.Errorf("client calls %s, want https", c.URL())
		}
		return errOf(c.Drain(ctx, "cache-e", admin.Change{}))
	})
	if res[0].Err != nil || !n.Overrides().Drained["cache-e"] {
		t.Fatalf("drain over HTTPS: %v, drained %v", res[0].Err, n.Overrides().Drained)
	}
	// Plain HTTP gets no service.
	if resp, err := http.Get("http://" + n.AdminAddr() + "/v1/status"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("the HTTPS admin listener answered plain HTTP")
		}
	}
}

// A version 1 state file (overrides as maps) is read: its drains and
// forces become records taken by this node, and the next save writes
// version 2.
func TestVersion1StateFileMigrated(t *testing.T) {
	state := filepath.Join(t.TempDir(), "ns1.state")
	writeFile(t, state, []byte(`{"version": 1, "node": "ns1", "saved_at": "2026-03-01T12:00:00Z",
		"overrides": {"Drained": {"cache-e": true}, "Forced": {"cache": "cache-w"}}, "engine": {}}`))
	f := newFixture(t, state)
	ov := f.node.Overrides()
	if !ov.Drained["cache-e"] || ov.Forced["cache"] != "cache-w" {
		t.Fatalf("overrides after a version 1 file = %+v, want cache-e drained and cache forced to cache-w", ov)
	}
	for _, r := range f.node.OverrideRecords() {
		if r.Stamp.Node != "ns1" || r.Who != admin.WhoLocal || !strings.Contains(r.Reason, "version 1") {
			t.Errorf("migrated record %+v, want taken by ns1, local, reason naming version 1", r)
		}
	}
	if c := f.status(t).State; c != nil && c.Corrupt != nil {
		t.Errorf("a version 1 file was reported unusable: %+v", c.Corrupt)
	}
	f.stop(t)
	st, _, err := loadState(state)
	if err != nil || st.Version != stateVersion || len(st.Overrides) != 2 {
		t.Fatalf("state after a save: %+v, %v; want version %d with 2 records", st, err, stateVersion)
	}
}
