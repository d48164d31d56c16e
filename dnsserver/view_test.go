package dnsserver

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/miekg/dns"

	"github.com/aagtm/aagtm/policy"
)

// TestNextViewMatchesFullBuild: a view built from the previous one (next)
// answers every query of the fast path's corpus, from every client, byte
// for byte as a view built from scratch, through a sequence of snapshots
// that changes reasons only, one host's records, a failover, a host
// appearing and one disappearing; and it shares the hosts whose answers did
// not change and rebuilds those that did.
func TestNextViewMatchesFullBuild(t *testing.T) {
	cfg := testConfig()
	log := hclog.NewNullLogger()
	sameAnswers := func(gen int, reason string) *policy.Snapshot {
		s := testSnapshot(gen)
		for _, ha := range s.Hosts {
			for _, a := range ha.ByRegion {
				a.Reason = reason + ": " + a.Reason
			}
		}
		return s
	}
	failover := func(gen int) *policy.Snapshot {
		s := testSnapshot(gen)
		s.Hosts[cacheHost].ByRegion["us-east"] = s.Hosts[cacheHost].ByRegion["eu-west"]
		return s
	}
	pendingAppears := func(gen int) *policy.Snapshot {
		s := failover(gen)
		s.Hosts["pending."+zone] = &policy.HostAnswers{Database: "pending", Host: "pending." + zone,
			ByRegion: map[string]*policy.Answer{"us-east": {Records: []policy.Record{aRec("p", "10.9.0.1")}, TTL: time.Second, Reason: "pending now served"}}}
		return s
	}
	cloudGoes := func(gen int) *policy.Snapshot {
		s := pendingAppears(gen)
		delete(s.Hosts, "cloud."+zone)
		return s
	}
	steps := []struct {
		name    string
		snap    *policy.Snapshot
		rebuilt []string // hosts whose records must be built anew
	}{
		{"reasons only", sameAnswers(1, "later"), nil},
		{"one host's records", testSnapshot(2), []string{manyHost}},
		{"failover", failover(3), []string{cacheHost, manyHost}},
		{"a host appears", pendingAppears(4), []string{"pending." + zone, manyHost}},
		{"a host goes", cloudGoes(5), []string{"cloud." + zone, manyHost}},
	}
	clients := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.2.0.1"), netip.MustParseAddr("2001:db8:1::1")}
	s := New(Options{CookieSecrets: [][16]byte{testSecret}}, log)
	loop, err := newUDPLoop(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	jar := loop.cookies
	now := time.Now()
	prev := buildView(cfg, testSnapshot(1), "n", DefaultMaxUDPSize, log)
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			inc := prev.next(cfg, st.snap, "n", DefaultMaxUDPSize, log)
			full := buildView(cfg, st.snap, "n", DefaultMaxUDPSize, log)
			for _, client := range clients {
				a := asker{client: client, now: cookieTime(now), cookies: jar}
				for _, pkt := range fastCorpus(t, jar, client, cookieTime(now)) {
					got, want := fullPathReply(pkt, a, inc), fullPathReply(pkt, a, full)
					fastGot, _, okGot := fastAnswer(nil, pkt, a, inc, &fastQuery{})
					fastWant, _, okWant := fastAnswer(nil, pkt, a, full, &fastQuery{})
					if !bytes.Equal(got, want) || okGot != okWant || !bytes.Equal(fastGot, fastWant) {
						req := new(dns.Msg)
						_ = req.Unpack(pkt)
						t.Fatalf("client %s query %v:\nnext  %x (fast %x)\nbuilt %x (fast %x)", client, req, got, fastGot, want, fastWant)
					}
				}
			}
			rebuilt := map[string]bool{}
			for _, h := range st.rebuilt {
				rebuilt[h] = true
			}
			for i := range cfg.Databases {
				h := canonical(cfg.Databases[i].Host)
				shared := inc.names[h].host == prev.names[h].host && inc.fast[h] == prev.fast[h]
				if shared == rebuilt[h] {
					t.Errorf("%s: shared with the previous view %v, want %v", h, shared, !rebuilt[h])
				}
			}
			prev = inc
		})
	}
	t.Run("another config builds afresh", func(t *testing.T) {
		other := testConfig()
		v := prev.next(other, cloudGoes(5), "n", DefaultMaxUDPSize, log)
		if v.names[cacheHost].host == prev.names[cacheHost].host {
			t.Error("a new config reused the previous view's hosts")
		}
	})
}

// TestWhyFollowsReasonsWithoutRebuild: a server given a snapshot whose
// answers did not change serves its newer reason at _why, over real UDP.
func TestWhyFollowsReasonsWithoutRebuild(t *testing.T) {
	cfg := testConfig()
	s, addr := startServer(t, Options{}, cfg, testSnapshot(1))
	before := s.view.Load()
	snap := testSnapshot(1)
	snap.Hosts[cacheHost].ByRegion["us-east"].Reason = "lag now 7ms"
	s.Update(cfg, snap)
	if s.view.Load().names[cacheHost].host != before.names[cacheHost].host {
		t.Error("the same answers rebuilt the host")
	}
	r := exchange(t, "udp", addr, query("_why."+cacheHost, dns.TypeTXT))
	if got := rrStrings(r.Answer); len(got) != 1 || !bytes.Contains([]byte(got[0]), []byte("lag now 7ms")) {
		t.Errorf("_why = %v, want the newer reason", got)
	}
}
