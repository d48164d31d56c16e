package config

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// validYAML is a small valid config that the cases below break one field at a time.
const validYAML = `
zone:
  name: gtm.example.com.
  ns: [{name: ns1.gtm.example.com., address: 192.0.2.53}]
regions:
  us-east: {subnets: [10.1.0.0/16], prefer: [us-east, eu-west]}
  eu-west: {subnets: [10.2.0.0/16, 10.1.5.0/24], prefer: [eu-west, us-east]}
default_region: us-east
databases:
  cache:
    members:
      - {name: cache-use, region: us-east, addresses: [10.1.0.10], redis: "redis://10.1.0.10:12000"}
      - {name: cache-euw, region: eu-west, cname: redis.eu.example.net, redis: "rediss://u:pw@redis.eu.example.net:12000"}
probes:
  checks: [ping, lag]
nodes:
  - {name: ns1, report: 127.0.0.1:7411}
security:
  insecure: true
`

func TestParseValid(t *testing.T) {
	cfg, err := Parse([]byte(validYAML))
	if err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	db, ok := cfg.Database("cache")
	if !ok {
		t.Fatal("database cache missing")
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"host", db.Host, "cache.gtm.example.com."},
		{"default mode", db.Mode, ModeNearest},
		{"default ttl", db.TTL, defaultDuration("databases.<name>.ttl")},
		{"default failback_hold", db.FailbackHold, defaultDuration("databases.<name>.failback_hold")},
		{"default when_all_down", db.WhenAllDown, AllDownAll},
		{"cname canonical", db.Members[1].CNAME, "redis.eu.example.net."},
		{"implied agents", len(cfg.Agents), 2},
		{"default interval", cfg.Probes.Interval, time.Second},
		{"default timeout", cfg.Probes.Timeout, 500 * time.Millisecond},
		{"default quorum", cfg.Probes.Quorum.String(), "majority"},
		{"soa mbox default", cfg.Zone.SOA.MBox, "hostmaster.gtm.example.com."},
		{"negative ttl default", cfg.Zone.SOA.NegativeTTL, 5 * time.Second},
		{"node listen defaults to report", cfg.Nodes[0].Listen, "127.0.0.1:7411"},
		{"node dns default", cfg.Nodes[0].DNS[0], DefaultDNSListen[0]},
		{"node admin default loopback", cfg.Nodes[0].Admin, DefaultAdminListen},
		{"max udp default", cfg.DNS.MaxUDPSize, 1232},
		{"hash set", cfg.Hash != "", true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestParseErrorsNameFieldAndFix(t *testing.T) {
	cases := []struct {
		name      string
		from, to  string // textual edit of validYAML
		wantError string
	}{
		{"unknown key", "default_region: us-east", "default_region: us-east\ndefault_regoin: x", "default_regoin: unknown setting"},
		{"unknown member key", "region: us-east, addresses", "regin: us-east, region: us-east, addresses", "databases.cache.members[0].regin: unknown setting"},
		{"undeclared region", "{name: cache-use, region: us-east", "{name: cache-use, region: eu-wst", `databases.cache.members[0].region: "eu-wst" is not a declared region (declared: eu-west, us-east)`},
		{"zone not a name", "name: gtm.example.com.", "name: gtm..example.com", "zone.name"},
		{"no ns", "ns: [{name: ns1.gtm.example.com., address: 192.0.2.53}]", "ns: []", "zone.ns: no name servers"},
		{"in-zone ns without glue", "{name: ns1.gtm.example.com., address: 192.0.2.53}", "{name: ns1.gtm.example.com.}", "needs glue"},
		{"bad glue", "address: 192.0.2.53", "address: 192.0.2", `zone.ns[0].addresses[0]: "192.0.2" is not an IP address`},
		{"duplicate member", "name: cache-euw", "name: cache-use", `databases.cache.members[1].name: "cache-use" is already a member`},
		{"bad address", "addresses: [10.1.0.10]", "addresses: [10.1.0.300]", `members[0].addresses[0]: "10.1.0.300" is not an IP address`},
		{"addresses and cname", "addresses: [10.1.0.10]", "addresses: [10.1.0.10], cname: x.example.", "has both addresses and cname"},
		{"neither", "addresses: [10.1.0.10], ", "", "has neither addresses nor cname"},
		{"member port 0", "addresses: [10.1.0.10]", "addresses: [10.1.0.10], port: 0", "databases.cache.members[0].port: 0 is not a TCP port: give 1–65535, or leave it out to use the redis URL's port"},
		{"member port too big", "addresses: [10.1.0.10]", "addresses: [10.1.0.10], port: 65536", "databases.cache.members[0].port: 65536 is not a TCP port"},
		{"member port negative", "addresses: [10.1.0.10]", "addresses: [10.1.0.10], port: -1", "databases.cache.members[0].port: -1 is not a TCP port"},
		{"member port text", "addresses: [10.1.0.10]", "addresses: [10.1.0.10], port: http", "members[0].port"},
		{"bad redis url", `redis: "redis://10.1.0.10:12000"`, `redis: "http://10.1.0.10"`, "members[0].redis"},
		{"redis url password masked", `redis: "redis://10.1.0.10:12000"`, `redis: "http://u:hunter2@10.1.0.10"`, "xxxxx"},
		{"timeout not below interval", "checks: [ping, lag]", "checks: [ping, lag]\n  timeout: 1s", "probes.timeout: 1s must be shorter than probes.interval (1s)"},
		{"rise zero", "checks: [ping, lag]", "checks: [ping, lag]\n  rise: 0", "probes.rise: 0: must be at least 1"},
		{"fall zero", "checks: [ping, lag]", "checks: [ping, lag]\n  fall: 0", "probes.fall: 0: must be at least 1"},
		{"quorum word", "checks: [ping, lag]", "checks: [ping, lag]\n  quorum: most", `probes.quorum: "most": use majority, any, all or a number`},
		{"quorum above agents", "checks: [ping, lag]", "checks: [ping, lag]\n  quorum: 3", "probes.quorum: 3: must be from 1 to the number of agents (2)"},
		{"unknown check", "checks: [ping, lag]", "checks: [ping, pong]", `probes.checks[1]: "pong": use ping, echo, keyspace, lag, rest or command`},
		{"command without args", "checks: [ping, lag]", "checks: [ping, command]", "probes.command.args"},
		{"rest without url", "checks: [ping, lag]", "checks: [ping, rest]", "databases.cache.members[0].rest.url"},
		{"prefer undeclared", "prefer: [us-east, eu-west]}", "prefer: [us-east, eu-wst]}", `regions.us-east.prefer[1]: "eu-wst" is not a declared region`},
		{"subnet host bits", "subnets: [10.1.0.0/16]", "subnets: [10.1.0.1/16]", "did you mean 10.1.0.0/16"},
		{"subnet twice", "subnets: [10.2.0.0/16, 10.1.5.0/24]", "subnets: [10.1.0.0/16]", "is also a subnet of region"},
		{"default region undeclared", "default_region: us-east", "default_region: mars", `default_region: "mars" is not a declared region`},
		{"ttl below 1s", "  cache:\n", "  cache:\n    ttl: 500ms\n", "databases.cache.ttl: 500ms"},
		{"bad duration", "  cache:\n", "  cache:\n    failback_hold: 30 seconds\n", `databases.cache.failback_hold: "30 seconds" is not a duration`},
		{"bad mode", "  cache:\n", "  cache:\n    mode: nearst\n", `databases.cache.mode: "nearst": use nearest, failover or all`},
		{"bad when_all_down", "  cache:\n", "  cache:\n    when_all_down: panic\n", "databases.cache.when_all_down"},
		{"order names stranger", "  cache:\n", "  cache:\n    order: [cache-use, nope]\n", `databases.cache.order[1]: "nope" is not a member of cache`},
		{"order incomplete", "  cache:\n", "  cache:\n    order: [cache-use]\n", "lists 1 of 2 members"},
		{"no nodes", "nodes:\n  - {name: ns1, report: 127.0.0.1:7411}", "nodes: []", "nodes: no nodes"},
		{"bad report address", "report: 127.0.0.1:7411", "report: 127.0.0.1", "nodes[0].report"},
		{"no auth", "insecure: true", "insecure: false", "reports would travel unauthenticated"},
		{"shared token removed", "insecure: true", "insecure: true\n  token_file: /nonexistent/token", "security.token_file: removed: a shared token let any holder report as every agent; give each agent its own token with agents[].token_file"},
		{"missing agent token file", "probes:", "agents: [{id: a1, region: us-east, token_file: /nonexistent/token}]\nprobes:", "agents[0].token_file: cannot read /nonexistent/token"},
		{"agent region", "probes:", "agents: [{id: a1, region: mars}]\nprobes:", `agents[0].region: "mars" is not a declared region`},
		{"insecure admin off loopback", "report: 127.0.0.1:7411}", "report: 127.0.0.1:7411, admin: \"0.0.0.0:8053\"}", "nodes[0].admin: 0.0.0.0:8053 is not a loopback address and security.admin_token_file is not set: security.insecure opens drain and force only on loopback; set security.admin_token_file, or bind admin to 127.0.0.1"},
		{"insecure admin on a name", "report: 127.0.0.1:7411}", "report: 127.0.0.1:7411, admin: \"ns1.internal:8053\"}", "nodes[0].admin: ns1.internal:8053 is not a loopback address"},
		{"admin tls without key", "report: 127.0.0.1:7411}", "report: 127.0.0.1:7411, admin_tls: {cert: /nonexistent/admin.crt}}", "nodes[0].admin_tls: HTTPS needs cert and key together"},
		{"admin tls missing file", "report: 127.0.0.1:7411}", "report: 127.0.0.1:7411, admin_tls: {cert: /nonexistent/admin.crt, key: /nonexistent/admin.key}}", "nodes[0].admin_tls.cert: cannot read /nonexistent/admin.crt"},
		{"udp size", "security:", "dns: {max_udp_size: 100}\nsecurity:", "dns.max_udp_size: 100"},
		{"amplification 1", "security:", "dns: {udp_amplification_limit: 1}\nsecurity:", "dns.udp_amplification_limit: 1: use 0 (no cap) or 2 to 100"},
		{"tcp no connections", "security:", "dns: {tcp: {max_connections: 0}}\nsecurity:", "dns.tcp.max_connections: 0: must be at least 1 (default 1000)"},
		{"tcp per source above total", "security:", "dns: {tcp: {max_connections: 10, max_connections_per_source: 11}}\nsecurity:", "dns.tcp.max_connections_per_source: 11: use 1 to dns.tcp.max_connections (10)"},
		{"tcp idle timeout", "security:", "dns: {tcp: {idle_timeout: 10}}\nsecurity:", `dns.tcp.idle_timeout: "10" is not a duration`},
		{"tcp read timeout zero", "security:", "dns: {tcp: {read_timeout: 0s}}\nsecurity:", "dns.tcp.read_timeout: 0s: must be positive (default 2s)"},
		{"tcp max queries", "security:", "dns: {tcp: {max_queries: -1}}\nsecurity:", "dns.tcp.max_queries: -1"},
		{"missing cookie secret file", "security:", "dns: {cookie_secret_file: /nonexistent/secret}\nsecurity:", "dns.cookie_secret_file: cannot read /nonexistent/secret"},
		{"section not a mapping", "security:", "dns: 1\nsecurity:", "dns: a mapping of settings is expected here"},
		{"scalar given a mapping", "checks: [ping, lag]", "checks: [ping, lag]\n  interval: {every: 1s}", "probes.interval: a single value is expected here"},
		{"not a whole number", "checks: [ping, lag]", "checks: [ping, lag]\n  rise: two", `probes.rise: "two" is not a whole number`},
		{"not a bool", "insecure: true", "insecure: maybe", `security.insecure: "maybe" is not true or false`},
		{"check listed twice", "checks: [ping, lag]", "checks: [ping, lag, PING]", "probes.checks[2]: ping is listed twice"},
		{"no checks", "checks: [ping, lag]", "checks: []", "probes.checks: empty: list at least one of ping, echo"},
		{"interval below floor", "checks: [ping, lag]", "checks: [ping, lag]\n  interval: 10ms", "probes.interval: 10ms: must be at least 50ms (default 1s); 100ms is the practical floor"},
		{"serial out of range", "ns: [{", "soa: {serial: 4294967296}\n  ns: [{", "zone.soa.serial: \"4294967296\" is not a whole number from 0 to 4294967295"},
		{"empty heartbeat prefix", "checks: [ping, lag]", "checks: [ping, lag]\n  heartbeat_prefix: \"\"", "probes.heartbeat_prefix: must not be empty (default aagtm:hb:)"},
		{"not yaml", "zone:", "zone: [", "not valid YAML"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(validYAML, c.from) {
				t.Fatalf("test edit %q does not apply", c.from)
			}
			_, err := Parse([]byte(strings.Replace(validYAML, c.from, c.to, 1)))
			if err == nil {
				t.Fatalf("accepted; want error containing %q", c.wantError)
			}
			if !strings.Contains(err.Error(), c.wantError) {
				t.Fatalf("error\n%v\ndoes not contain %q", err, c.wantError)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error leaks a password: %v", err)
			}
		})
	}
}

// TestReadCookieSecrets: a secret file is one 32-hex-digit secret per
// line, comments and blank lines skipped; a bad file gets an error that
// says how to make a secret and never quotes one.
func TestReadCookieSecrets(t *testing.T) {
	const s1, s2 = "e5e973e5a6b2a43f48e7dc849e37bfcf", "445536bcd2513298075a5d379663c962"
	tests := []struct {
		name    string
		content string
		want    int // secrets read; 0: an error
		wantErr string
	}{
		{"one secret", s1 + "\n", 1, ""},
		{"current and previous, comments", "# rolled 2026-03-01\n" + s2 + "\n\n  " + s1 + "  \n", 2, ""},
		{"upper case", strings.ToUpper(s1), 1, ""},
		{"empty", "# nothing\n\n", 0, "holds no secret"},
		{"short", s1[:30] + "\n", 0, "line 1: a secret is 32 hex digits (128 bits), this line has 30 characters"},
		{"long", s1 + "00\n", 0, "this line has 34 characters"},
		{"not hex", "zz" + s1[2:] + "\n", 0, "line 1: a secret is 32 hex digits"},
		{"all zero", strings.Repeat("0", 32), 0, "an all-zero secret is no secret"},
		{"too many", strings.Repeat(s1+"\n", MaxCookieSecrets+1), 0, "at most 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "cookie.secret")
			if err := os.WriteFile(f, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := ReadCookieSecrets(f)
			if tt.want > 0 {
				if err != nil || len(got) != tt.want {
					t.Fatalf("got %d secrets, %v; want %d", len(got), err, tt.want)
				}
				if hex.EncodeToString(got[len(got)-1][:]) != s1 {
					t.Errorf("last secret %x, want %s", got[len(got)-1], s1)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), s1[4:20]) {
				t.Errorf("error quotes the secret: %v", err)
			}
			if !strings.Contains(err.Error(), "openssl rand -hex 16") && !strings.Contains(err.Error(), "at most") {
				t.Errorf("error does not say how to make a secret: %v", err)
			}
		})
	}
}

func TestParseCollectsEveryError(t *testing.T) {
	bad := strings.NewReplacer("rise: 0", "", "checks: [ping, lag]", "checks: [pong]\n  rise: 0\n  fall: 0",
		"region: us-east, addresses", "region: mars, addresses").Replace(validYAML)
	_, err := Parse([]byte(bad))
	if err == nil {
		t.Fatal("accepted a config with three errors")
	}
	for _, want := range []string{"probes.checks[0]", "probes.rise", "probes.fall", "members[0].region"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error misses %s:\n%v", want, err)
		}
	}
}

func TestExamplesLoad(t *testing.T) {
	files, err := filepath.Glob("../examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example configs found: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := Load(Options{Path: f, Environ: []string{}}); err != nil {
				t.Fatalf("example does not load: %v", err)
			}
		})
	}
}

func TestEnvAndFlagOverrides(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte(validYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(Options{Path: path, Environ: []string{"AAGTM_PROBES_INTERVAL=250ms", "AAGTM_PROBES_TIMEOUT=100ms", "AAGTM_PROBES_CHECKS=ping,echo", "OTHER=1"}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Probes.Interval != 250*time.Millisecond || cfg.Probes.Timeout != 100*time.Millisecond {
		t.Errorf("env not applied: interval %s timeout %s", cfg.Probes.Interval, cfg.Probes.Timeout)
	}
	if len(cfg.Probes.Checks) != 2 || cfg.Probes.Checks[1] != CheckEcho {
		t.Errorf("env list not applied: %v", cfg.Probes.Checks)
	}

	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.String("probes.fall", "", "")
	fs.String("probes.checks", "", "")
	fs.String("config", "", "")
	if err := fs.Parse([]string{"--probes.fall=5", "--probes.checks=ping,echo", "--config=x"}); err != nil {
		t.Fatal(err)
	}
	cfg, err = Load(Options{Path: path, Flags: fs, Environ: []string{"AAGTM_PROBES_FALL=3"}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Probes.Fall != 5 {
		t.Errorf("flag should beat env and file: fall = %d", cfg.Probes.Fall)
	}
	if len(cfg.Probes.Checks) != 2 || cfg.Probes.Checks[1] != CheckEcho {
		t.Errorf("list flag not split: %v", cfg.Probes.Checks)
	}

	_, err = Load(Options{Path: path, Environ: []string{"AAGTM_PROBES_INTERVAL=fast"}})
	if err == nil || !strings.Contains(err.Error(), `probes.interval: "fast" is not a duration`) {
		t.Errorf("bad env value: got %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(Options{Path: "/nonexistent/aagtm.yaml"})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/aagtm.yaml") {
		t.Fatalf("got %v", err)
	}
	if _, err := Load(Options{}); err == nil || !strings.Contains(err.Error(), "--config") {
		t.Fatalf("no path: got %v", err)
	}
}

func TestMatchRegionLongestPrefix(t *testing.T) {
	cfg, err := Parse([]byte(validYAML))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		addr       string
		wantRegion string
		wantBits   int
		wantOK     bool
	}{
		{"10.1.0.7", "us-east", 16, true},
		{"10.1.5.7", "eu-west", 24, true}, // 10.1.5.0/24 (eu-west) is longer than 10.1.0.0/16
		{"10.2.9.9", "eu-west", 16, true},
		{"::ffff:10.1.0.7", "us-east", 16, true},
		{"192.0.2.1", "", 0, false},
	}
	for _, c := range cases {
		t.Run(c.addr, func(t *testing.T) {
			r, p, ok := cfg.MatchRegion(netip.MustParseAddr(c.addr))
			if r != c.wantRegion || ok != c.wantOK || (ok && p.Bits() != c.wantBits) {
				t.Fatalf("got %q %v %v", r, p, ok)
			}
		})
	}
}

// TestMemberPort: members[].port is what Sentinel answers; by default the
// redis URL's port, 6379 when the URL names none.
func TestMemberPort(t *testing.T) {
	tests := []struct {
		name, from, to string
		want           int
	}{
		{"url port", "", "", 12000},
		{"explicit port", "addresses: [10.1.0.10]", "addresses: [10.1.0.10], port: 16379", 16379},
		{"url without port", `redis: "redis://10.1.0.10:12000"`, `redis: "redis://10.1.0.10"`, DefaultRedisPort},
		{"explicit port, url without", `redis: "redis://10.1.0.10:12000"`, `redis: "redis://10.1.0.10", port: 1`, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(validYAML, tt.from) {
				t.Fatalf("test edit %q does not apply", tt.from)
			}
			cfg, err := Parse([]byte(strings.Replace(validYAML, tt.from, tt.to, 1)))
			if err != nil {
				t.Fatal(err)
			}
			if m, _, _ := cfg.Member("cache-use"); m.Port != tt.want {
				t.Errorf("port %d, want %d", m.Port, tt.want)
			}
		})
	}
}

// TestClientRegion: the region DNS and Sentinel give a client address,
// the default region when no subnet matches; an IPv4-mapped subnet holds
// the IPv4 clients it maps.
func TestClientRegion(t *testing.T) {
	yaml := strings.Replace(validYAML, "10.2.0.0/16, 10.1.5.0/24", "10.2.0.0/16, 10.1.5.0/24, \"::ffff:10.3.0.0/112\"", 1)
	yaml = strings.Replace(yaml, "default_region: us-east", "default_region: eu-west", 1)
	cfg, err := Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.ClientRegions(); strings.Join(got, ",") != "eu-west,us-east" {
		t.Errorf("ClientRegions = %v, want the declared regions", got)
	}
	cases := []struct {
		addr, wantRegion, wantMatched string
	}{
		{"10.1.0.7", "us-east", "10.1.0.0/16"},
		{"10.1.5.7", "eu-west", "10.1.5.0/24"},
		{"10.3.0.9", "eu-west", "10.3.0.0/16"},        // the mapped subnet, unmapped
		{"::ffff:10.3.0.9", "eu-west", "10.3.0.0/16"}, // a mapped client too
		{"192.0.2.1", "eu-west", "invalid Prefix"},    // no subnet: the default region
		{"2001:db8::1", "eu-west", "invalid Prefix"},
	}
	for _, c := range cases {
		t.Run(c.addr, func(t *testing.T) {
			r, p := cfg.ClientRegion(netip.MustParseAddr(c.addr))
			if r != c.wantRegion || p.String() != c.wantMatched {
				t.Fatalf("got %q %v, want %q %s", r, p, c.wantRegion, c.wantMatched)
			}
		})
	}
}

func TestPreference(t *testing.T) {
	cfg := &Config{Regions: []Region{{Name: "a"}, {Name: "b", Prefer: []string{"c"}}, {Name: "c"}}}
	cases := map[string]string{"a": "a,b,c", "b": "b,c,a", "c": "c,a,b", "zz": "a,b,c"}
	for from, want := range cases {
		if got := strings.Join(cfg.Preference(from), ","); got != want {
			t.Errorf("Preference(%s) = %s, want %s", from, got, want)
		}
	}
}

func TestAdminOffLoopbackNeedsTokenWithInsecure(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(tokenFile, []byte("t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, admin, token string
		wantOK             bool
	}{
		{"loopback v4", "127.0.0.1:8053", "", true},
		{"loopback v6", "[::1]:8053", "", true},
		{"localhost", "localhost:8053", "", true},
		{"any address", "0.0.0.0:8053", "", false},
		{"unspecified host", ":8053", "", false},
		{"routable", "192.0.2.5:8053", "", false},
		{"any address with token", "0.0.0.0:8053", tokenFile, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			yml := strings.Replace(validYAML, "report: 127.0.0.1:7411}", fmt.Sprintf("report: 127.0.0.1:7411, admin: %q}", c.admin), 1)
			if c.token != "" {
				yml = strings.Replace(yml, "insecure: true", "insecure: true\n  admin_token_file: "+c.token, 1)
			}
			_, err := Parse([]byte(yml))
			if (err == nil) != c.wantOK {
				t.Fatalf("admin %s, token file %q: error %v, want ok=%v", c.admin, c.token, err, c.wantOK)
			}
		})
	}
}
