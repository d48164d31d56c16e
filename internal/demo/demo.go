// Package demo runs a complete aagtm on localhost in one process: three
// regions, each with a Redis member and a probe agent, and one GTM node
// serving DNS. It exists for `aagtm demo` and for end-to-end tests.
//
// The members are independent Redis servers, not a real Active-Active
// database, so the demo runs small loops that copy the agents' heartbeat
// keys between them to stand in for Active-Active replication, one loop per
// pair of members, and says so.
package demo

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sync/errgroup"

	"github.com/aagtm/aagtm/admin"
	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/internal/node"
	"github.com/aagtm/aagtm/probes"
)

// Options configure the demo.
type Options struct {
	// DNS is the DNS listen address (default 127.0.0.1:5353).
	DNS string
	// Admin is the admin HTTP address (default 127.0.0.1:8053).
	Admin string
	// Sentinel is the Sentinel-protocol address (default 127.0.0.1:26379).
	Sentinel string
	// MemberPort is the port every member listens on, each on its own
	// loopback address; 0 picks a free one.
	MemberPort int
	// Backend is "auto" (redis-server when on PATH, else embedded
	// miniredis), "redis-server" or "miniredis".
	Backend string
	// Dir holds the generated config and state; empty makes a temp folder.
	Dir string
	// For stops the demo after this long; 0 runs until ctx is done.
	For time.Duration
	// In, when set, is read for control commands (fail, recover, lag, …).
	In io.Reader
	// Out receives the banner and command replies.
	Out io.Writer
}

// region describes one demo region.
type region struct {
	name, member, addr, subnet string
}

var regions = []region{
	{"us-east", "cache-use", "127.0.0.11", "10.1.0.0/16"},
	{"eu-west", "cache-euw", "127.0.0.12", "10.2.0.0/16"},
	{"ap-south", "cache-aps", "127.0.0.13", "10.3.0.0/16"},
}

// Run starts everything, prints how to use it and serves until ctx is done
// (or Options.For has passed), then stops everything it started.
func Run(ctx context.Context, opts Options, logger hclog.Logger) error {
	if opts.DNS == "" {
		opts.DNS = "127.0.0.1:5353"
	}
	if opts.Admin == "" {
		opts.Admin = "127.0.0.1:8053"
	}
	if opts.Sentinel == "" {
		opts.Sentinel = "127.0.0.1:26379"
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.For > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.For)
		defer cancel()
	}
	if opts.Dir == "" {
		dir, err := os.MkdirTemp("", "aagtm-demo-")
		if err != nil {
			return fmt.Errorf("demo folder: %w", err)
		}
		defer os.RemoveAll(dir)
		opts.Dir = dir
	}
	log := logger.Named("demo")

	port := opts.MemberPort
	if port == 0 {
		p, err := commonFreePort()
		if err != nil {
			return err
		}
		port = p
	}
	ingestPort, err := freePort("127.0.0.1")
	if err != nil {
		return err
	}

	members, backendName, err := startMembers(ctx, opts.Backend, opts.Dir, port)
	if err != nil {
		return err
	}
	defer func() {
		for _, m := range members {
			m.stop()
		}
	}()
	log.Info("members started", "backend", backendName, "port", port)

	// One token per agent: a node maps each to its agent, so nobody on
	// the loopback can report as another region's agent.
	for _, r := range regions {
		if err := writeToken(filepath.Join(opts.Dir, r.name+".token")); err != nil {
			return err
		}
	}
	cfgPath := filepath.Join(opts.Dir, "aagtm.yaml")
	if err := os.WriteFile(cfgPath, []byte(configYAML(port, ingestPort, opts.DNS, opts.Admin, opts.Sentinel, filepath.Join(opts.Dir, "ns1.state"))), 0o600); err != nil {
		return fmt.Errorf("write demo config: %w", err)
	}
	cfg, err := config.Load(config.Options{Path: cfgPath, Environ: []string{}})
	if err != nil {
		return fmt.Errorf("demo config: %w", err)
	}

	n, err := node.New(cfg, "ns1", logger, node.Options{})
	if err != nil {
		return err
	}
	repl := newReplicator(members, cfg.Probes.HeartbeatPrefix)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return n.Run(gctx) })
	select {
	case <-n.Started():
	case <-gctx.Done():
		return g.Wait()
	}
	for _, a := range cfg.Agents {
		agent, err := probes.NewAgent(cfg, a.ID, logger)
		if err != nil {
			cancel()
			g.Wait()
			return err
		}
		g.Go(func() error { return agent.Run(gctx) })
	}
	g.Go(func() error { repl.run(gctx); return nil })

	printBanner(opts.Out, cfgPath, backendName, members, n.DNSAddrs(), n.AdminAddr(), n.SentinelAddr())
	if opts.In != nil {
		ctl := &controller{out: opts.Out, members: members, repl: repl, node: n, cancel: cancel}
		go ctl.read(gctx, opts.In)
	}
	err = g.Wait()
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		err = nil
	}
	log.Info("demo stopped")
	return err
}

func configYAML(port, ingestPort int, dnsAddr, adminAddr, sentinelAddr, stateFile string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# Generated by aagtm demo. Every node and agent of the demo reads this file.
zone:
  name: gtm.demo.
  ns: [{name: ns1.gtm.demo., address: 127.0.0.1}]
  soa: {negative_ttl: 5s}
regions:
  us-east:  {subnets: [10.1.0.0/16, 127.0.0.0/8], prefer: [us-east, eu-west, ap-south]}
  eu-west:  {subnets: [10.2.0.0/16], prefer: [eu-west, us-east, ap-south]}
  ap-south: {subnets: [10.3.0.0/16], prefer: [ap-south, eu-west, us-east]}
default_region: us-east
databases:
  cache:
    mode: nearest
    ttl: 2s
    lag_tolerance: 500ms
    failback_hold: 10s
    when_all_down: all
    members:
`)
	for _, r := range regions {
		fmt.Fprintf(&b, "      - {name: %s, region: %s, addresses: [%s], redis: \"redis://%s:%d\"}\n", r.member, r.name, r.addr, r.addr, port)
	}
	b.WriteString("agents:   # each with its own token, next to this file\n")
	for _, r := range regions {
		fmt.Fprintf(&b, "  - {id: %s, region: %s, token_file: %s.token}\n", r.name, r.name, r.name)
	}
	fmt.Fprintf(&b, `probes:
  interval: 500ms
  timeout: 250ms
  rise: 2
  fall: 2
  quorum: majority
  stale_after: 2s
  checks: [ping, keyspace, lag]
  keyspace_keys: 4
nodes:
  - {name: ns1, report: "127.0.0.1:%d", dns: ["%s"], admin: "%s", sentinel: "%s", state_file: "%s"}
security:
  insecure: true   # demo only: reports travel in plaintext on loopback (still one token per agent)
`, ingestPort, dnsAddr, adminAddr, sentinelAddr, stateFile)
	return b.String()
}

// writeToken writes a random bearer token to path, readable by the owner
// only.
func writeToken(path string) error {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("demo token: %w", err)
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(b[:])+"\n"), 0o600); err != nil {
		return fmt.Errorf("write demo token: %w", err)
	}
	return nil
}

func printBanner(w io.Writer, cfgPath, backend string, members []*member, dnsAddrs []string, adminAddr, sentinelAddr string) {
	host, port := "127.0.0.1", "5353"
	if len(dnsAddrs) > 0 {
		if h, p, err := net.SplitHostPort(dnsAddrs[0]); err == nil {
			host, port = h, p
		}
	}
	sHost, sPort, err := net.SplitHostPort(sentinelAddr)
	if err != nil {
		sHost, sPort = "127.0.0.1", "26379"
	}
	fmt.Fprintf(w, `
aagtm demo is running.
  status page  http://%s/   (open it in a browser: it updates live)

  config    %s
  members   %s
  DNS       %s (UDP and TCP), zone gtm.demo.
  admin     http://%s/v1/status
  sentinel  %s (Redis Sentinel protocol: database name cache)

The members are independent Redis servers; a loop copies the agents' heartbeat
keys between them every 20ms to stand in for Active-Active replication, each
pair of members on its own, so a hung member delays only what flows through it.

Try:
  dig @%s -p %s cache.gtm.demo +short                       # you are in us-east (127.0.0.0/8)
  dig @%s -p %s cache.gtm.demo +short +subnet=10.2.0.1/24   # a client in eu-west
  dig @%s -p %s cache.gtm.demo +short +subnet=10.3.0.1/24   # a client in ap-south
  dig @%s -p %s TXT _why.cache.gtm.demo +short              # why that answer
  redis-cli -h $(dig @%s -p %s cache.gtm.demo +short) -p %d PING
  redis-cli -h %s -p %s SENTINEL get-master-addr-by-name cache   # what Sentinel clients get
  curl -s http://%s/v1/status

Fail a member and watch the answer move (type here, or use the admin API):
  fail cache-use       hang the us-east member (SIGSTOP / stop the server)
  recover cache-use    bring it back: traffic returns after the 10s failback hold
  lag cache-euw        pause replication to eu-west: it becomes lagging
  sync cache-euw       resume replication
  status               the node's view of members and answers
  quit                 stop the demo (or Ctrl-C)
`, adminAddr, cfgPath, describeMembers(members, backend), strings.Join(dnsAddrs, " "), adminAddr, sentinelAddr,
		host, port, host, port, host, port, host, port, host, port, members[0].port, sHost, sPort, adminAddr)
	for _, m := range members {
		if m.pid > 0 {
			fmt.Fprintf(w, "  kill -STOP %d / kill -CONT %d   hang / resume %s by hand\n", m.pid, m.pid, m.name)
		}
	}
	fmt.Fprintln(w)
}

func describeMembers(members []*member, backend string) string {
	var parts []string
	for _, m := range members {
		parts = append(parts, fmt.Sprintf("%s=%s:%d", m.name, m.addr, m.port))
	}
	return strings.Join(parts, " ") + " (" + backend + ")"
}

// controller reads operator commands for the demo from a stream.
type controller struct {
	out     io.Writer
	members []*member
	repl    *replicator
	node    *node.Node
	cancel  context.CancelFunc
	mu      sync.Mutex
}

func (c *controller) read(ctx context.Context, in io.Reader) {
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		if ctx.Err() != nil {
			return
		}
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		c.do(ctx, fields)
	}
}

func (c *controller) do(ctx context.Context, f []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	find := func() *member {
		if len(f) < 2 {
			fmt.Fprintf(c.out, "usage: %s MEMBER (one of cache-use, cache-euw, cache-aps)\n", f[0])
			return nil
		}
		for _, m := range c.members {
			if m.name == f[1] {
				return m
			}
		}
		fmt.Fprintf(c.out, "no member %q (members: cache-use, cache-euw, cache-aps)\n", f[1])
		return nil
	}
	switch f[0] {
	case "fail":
		if m := find(); m != nil {
			if err := m.fail(); err != nil {
				fmt.Fprintf(c.out, "fail %s: %v\n", m.name, err)
				return
			}
			fmt.Fprintf(c.out, "%s is down; the answer moves within fall×interval+timeout = 1.25s\n", m.name)
		}
	case "recover":
		if m := find(); m != nil {
			if err := m.recover(ctx); err != nil {
				fmt.Fprintf(c.out, "recover %s: %v\n", m.name, err)
				return
			}
			fmt.Fprintf(c.out, "%s is back; it gets traffic again after rise×interval + failback_hold ≈ 11s\n", m.name)
		}
	case "lag":
		if m := find(); m != nil {
			c.repl.pause(m.name, true)
			fmt.Fprintf(c.out, "replication to %s paused: its lag grows past the 500ms tolerance\n", m.name)
		}
	case "sync":
		if m := find(); m != nil {
			c.repl.pause(m.name, false)
			fmt.Fprintf(c.out, "replication to %s resumed\n", m.name)
		}
	case "status":
		// The same document the status page, `aagtm status` and
		// /v1/status show, readiness included.
		if err := c.printStatus(ctx); err != nil {
			fmt.Fprintf(c.out, "status: %v\n", err)
		}
	case "quit", "exit":
		c.cancel()
	case "help":
		fmt.Fprintln(c.out, "commands: fail MEMBER, recover MEMBER, lag MEMBER, sync MEMBER, status, quit")
	default:
		fmt.Fprintf(c.out, "unknown command %q; try help\n", f[0])
	}
}

// printStatus fetches the node's status over its admin API and prints it
// as `aagtm status` does.
func (c *controller) printStatus(ctx context.Context) error {
	cl, err := admin.NewClient("ns1", c.node.AdminAddr(), "")
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, admin.DefaultTimeout)
	defer cancel()
	st, err := cl.Status(sctx)
	if err != nil {
		return err
	}
	return admin.RenderStatus(c.out, st)
}

// freePort returns a TCP port free on host.
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// commonFreePort finds a port free on every member address, so that the
// members share a port on different addresses as production members share
// a port on different hosts.
func commonFreePort() (int, error) {
	for try := 0; try < 50; try++ {
		p, err := freePort(regions[0].addr)
		if err != nil {
			return 0, fmt.Errorf("the demo binds 127.0.0.11-13 (loopback): %w", err)
		}
		ok := true
		for _, r := range regions[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(r.addr, fmt.Sprint(p)))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return p, nil
		}
	}
	return 0, errors.New("no port is free on all of 127.0.0.11-13")
}
