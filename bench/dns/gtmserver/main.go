// Command gtmserver runs the aagtm DNS server (package dnsserver) on a
// generated zone of N database hostnames, db0000.gtm.example.com. and on,
// for benchmarks (bench/dns/run.sh). Every host is in nearest mode over two
// regions, one A record per region; clients outside the region subnets
// (loopback) get the default region's answer.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/dnsserver"
	"github.com/aagtm/aagtm/policy"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:5300", "address to serve, UDP and TCP")
	hosts := flag.Int("hosts", 1000, "number of database hostnames")
	reuse := flag.Int("reuseport", 0, "UDP sockets per address (SO_REUSEPORT)")
	metrics := flag.Bool("metrics", true, "register the Prometheus metrics (as in production)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file until exit")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gtmserver:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "gtmserver:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}

	log := hclog.New(&hclog.LoggerOptions{Name: "gtmserver", Level: hclog.Info})
	opts := dnsserver.Options{Node: "bench", Listen: []string{*listen}, ReusePort: *reuse}
	if *metrics {
		opts.Registerer = prometheus.NewRegistry()
	}
	s := dnsserver.New(opts, log)
	cfg, snap := zone(*hosts)
	s.Update(cfg, snap)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := s.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "gtmserver:", err)
		os.Exit(1)
	}
}

// zone returns the config and snapshot of n databases.
func zone(n int) (*config.Config, *policy.Snapshot) {
	const name = "gtm.example.com."
	cfg := &config.Config{
		Zone: config.Zone{
			Name: name,
			NS:   []config.NameServer{{Name: "ns1." + name, Addresses: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}},
			SOA: config.SOA{MBox: "hostmaster.example.com.", Refresh: time.Hour, Retry: 10 * time.Minute,
				Expire: 24 * time.Hour, NegativeTTL: 5 * time.Second, TTL: time.Hour},
		},
		Regions: []config.Region{
			{Name: "eu-west", Subnets: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/16")}},
			{Name: "us-east", Subnets: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}},
		},
		DefaultRegion: "us-east",
	}
	snap := &policy.Snapshot{Generated: time.Now(), Serial: 1, Hosts: map[string]*policy.HostAnswers{}}
	for i := range n {
		db := fmt.Sprintf("db%04d", i)
		host := db + "." + name
		cfg.Databases = append(cfg.Databases, config.Database{Name: db, Host: host, Mode: config.ModeNearest, TTL: 5 * time.Second})
		answer := func(region string, net int) *policy.Answer {
			member := db + "-" + region
			return &policy.Answer{
				Records:         []policy.Record{{Kind: policy.RecordA, Member: member, Addr: netip.AddrFrom4([4]byte{10, byte(net), byte(i / 250), byte(i%250 + 1)})}},
				TTL:             5 * time.Second,
				Members:         []string{member},
				Reason:          member + " is the nearest eligible member for " + region,
				RegionDependent: true,
			}
		}
		snap.Hosts[host] = &policy.HostAnswers{Database: db, Host: host, ByRegion: map[string]*policy.Answer{
			"us-east": answer("us-east", 1),
			"eu-west": answer("eu-west", 2),
		}}
	}
	return cfg, snap
}
