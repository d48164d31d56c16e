// Command baseline is the yardstick of bench/dns/run.sh: a bare miekg/dns
// server answering A for the same N hostnames as gtmserver from a static
// map (NXDOMAIN otherwise), with no policy, EDNS, ECS, rate limiting or
// metrics.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/miekg/dns"
	"golang.org/x/sync/errgroup"
)

type static map[string][]dns.RR

func (h static) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
	} else if rrs, ok := h[strings.ToLower(r.Question[0].Name)]; !ok {
		m.Rcode = dns.RcodeNameError
	} else if r.Question[0].Qtype == dns.TypeA {
		m.Answer = rrs
	}
	_ = w.WriteMsg(m)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:5301", "address to serve, UDP and TCP")
	hosts := flag.Int("hosts", 1000, "number of hostnames")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file until exit")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "baseline:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "baseline:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}

	h := static{}
	for i := range *hosts {
		name := fmt.Sprintf("db%04d.gtm.example.com.", i)
		h[name] = []dns.RR{&dns.A{
			Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5},
			A:   netip.AddrFrom4([4]byte{10, 1, byte(i / 250), byte(i%250 + 1)}).AsSlice(),
		}}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	g, ctx := errgroup.WithContext(ctx)
	for _, network := range []string{"udp", "tcp"} {
		srv := &dns.Server{Addr: *listen, Net: network, Handler: h}
		g.Go(srv.ListenAndServe)
		g.Go(func() error {
			<-ctx.Done()
			return srv.ShutdownContext(context.Background())
		})
	}
	if err := g.Wait(); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}
