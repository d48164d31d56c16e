package dnsserver

import (
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestDig checks the server with dig(1), the tool operators use.
func TestDig(t *testing.T) {
	dig, err := exec.LookPath("dig")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("dig not found; install it (Debian: apt-get install -y bind9-dnsutils)")
		}
		t.Skip("dig not found, skipping the dig tests; install bind9-dnsutils to run them")
	}
	_, addr := startServer(t, Options{}, testConfig(), manySnapshot())
	host, port, _ := net.SplitHostPort(addr)
	run := func(t *testing.T, args ...string) string {
		t.Helper()
		args = append([]string{"@" + host, "-p", port, "+norec", "+time=2", "+tries=1"}, args...)
		out, err := exec.Command(dig, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("dig %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	has := func(t *testing.T, out string, patterns ...string) {
		t.Helper()
		for _, p := range patterns {
			if !regexp.MustCompile(p).MatchString(out) {
				t.Errorf("dig output does not match %q:\n%s", p, out)
			}
		}
	}
	answerA := func(name, addr string) string {
		return `(?m)^` + regexp.QuoteMeta(name) + `\s+5\s+IN\s+A\s+` + regexp.QuoteMeta(addr) + `$`
	}

	t.Run("A", func(t *testing.T) {
		out := run(t, "cache."+zone, "A")
		has(t, out, `status: NOERROR`, `flags: qr aa;`, `ANSWER: 1,`, answerA("cache."+zone, "10.1.0.10"))
	})
	t.Run("SOA", func(t *testing.T) {
		out := run(t, zone, "SOA", "+short")
		has(t, out, `(?m)^ns1\.gtm\.example\.com\. hostmaster\.example\.com\. 2024010101 3600 600 86400 5$`)
	})
	t.Run("NXDOMAIN", func(t *testing.T) {
		out := run(t, "nope."+zone, "A")
		has(t, out, `status: NXDOMAIN`, `flags: qr aa;`, `AUTHORITY: 1,`,
			`(?m)^gtm\.example\.com\.\s+5\s+IN\s+SOA\s+ns1\.gtm\.example\.com\. `)
	})
	t.Run("TC retried over TCP", func(t *testing.T) {
		out := run(t, "many."+zone, "A")
		has(t, out, `Truncated, retrying in TCP mode`, `status: NOERROR`, `ANSWER: 100,`, answerA("many."+zone, "10.3.0.100"))
	})
	t.Run("ECS regions", func(t *testing.T) {
		use := run(t, "cache."+zone, "A", "+subnet=10.1.0.0/24")
		has(t, use, answerA("cache."+zone, "10.1.0.10"), `CLIENT-SUBNET: 10\.1\.0\.0/24/16`)
		euw := run(t, "cache."+zone, "A", "+subnet=10.2.0.0/24")
		has(t, euw, answerA("cache."+zone, "10.2.0.10"), `CLIENT-SUBNET: 10\.2\.0\.0/24/16`)
	})
	t.Run("CH id.server", func(t *testing.T) {
		has(t, run(t, "id.server", "CH", "TXT", "+short"), `(?m)^"node-a"$`)
	})
	// DNS Cookies (RFC 7873): dig learns a server cookie, sends it back,
	// and a server cookie the node did not make gets BADCOOKIE with a
	// fresh one, which dig +badcookie retries with.
	t.Run("cookie round trip", func(t *testing.T) {
		cookieRe := regexp.MustCompile(`; COOKIE: ([0-9a-f]{48}) \(good\)`)
		out := run(t, "cache."+zone, "A", "+cookie")
		m := cookieRe.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no good server cookie in:\n%s", out)
		}
		full := m[1]
		sameClient := `; COOKIE: ` + full[:16] + `[0-9a-f]{32} \(good\)`
		has(t, run(t, "cache."+zone, "A", "+cookie="+full), `status: NOERROR`, sameClient, answerA("cache."+zone, "10.1.0.10"))
		bad := full[:16] + "01000000" + full[24:32] + "0000000000000000"
		has(t, run(t, "cache."+zone, "A", "+cookie="+bad, "+nobadcookie"), `status: BADCOOKIE`, `ANSWER: 0,`, sameClient)
		has(t, run(t, "cache."+zone, "A", "+cookie="+bad, "+badcookie"), `status: NOERROR`, answerA("cache."+zone, "10.1.0.10"))
		has(t, run(t, "cache."+zone, "A", "+cookie="+bad, "+tcp"), `status: NOERROR`, answerA("cache."+zone, "10.1.0.10"), sameClient)
	})
	t.Run("_why", func(t *testing.T) {
		has(t, run(t, "_why.cache."+zone, "TXT", "+short", "+subnet=10.2.0.0/24"), `(?m)^"gen 1: cache-euw is the nearest eligible member for eu-west"$`)
	})
}
