package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/aagtm/aagtm/internal/demo"
)

func newDemoCmd(g *globalFlags) *cobra.Command {
	var opts demo.Options
	var noInput bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a complete GTM on localhost: 3 regions, 3 Redis members, 3 agents, 1 node",
		Long: `demo starts, in one process, a working GTM you can query with dig at once:

  - three regions (us-east, eu-west, ap-south), each with a Redis member on its
    own loopback address (127.0.0.11-13) and one common port: real redis-server
    processes when redis-server is on PATH, otherwise embedded miniredis servers
    (it says which);
  - a probe agent per region, reporting over gRPC on loopback;
  - one GTM node with DNS on 127.0.0.1:5353 and admin on 127.0.0.1:8053.

The members are independent servers, so a small loop copies heartbeat keys
between them to stand in for Active-Active replication. Type fail/recover/lag/
sync MEMBER, status or quit at the prompt to see failover, failback and lag
handling; failovers and failbacks are logged as they happen. Ctrl-C stops it.`,
		Example: `  aagtm demo
  dig @127.0.0.1 -p 5353 cache.gtm.demo +short`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := g.newLogger(os.Stderr, "aagtm")
			if err != nil {
				return err
			}
			opts.Out = cmd.OutOrStdout()
			if !noInput {
				opts.In = os.Stdin // a terminal or a pipe; EOF just ends input
			}
			return demo.Run(cmd.Context(), opts, logger)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.DNS, "dns", "127.0.0.1:5353", "DNS listen address (UDP and TCP)")
	f.StringVar(&opts.Admin, "admin", "127.0.0.1:8053", "admin HTTP listen address")
	f.StringVar(&opts.Sentinel, "sentinel", "127.0.0.1:26379", "Redis Sentinel protocol listen address")
	f.IntVar(&opts.MemberPort, "member-port", 0, "port all three members listen on (default: a free one)")
	f.StringVar(&opts.Backend, "backend", "auto", "member servers: auto, redis-server or miniredis")
	f.StringVar(&opts.Dir, "dir", "", "folder for the generated config and state (default: a temp folder, removed on exit)")
	f.DurationVar(&opts.For, "for", 0, "stop after this long (default: until Ctrl-C)")
	f.BoolVar(&noInput, "no-input", false, "do not read commands from standard input")
	return cmd
}
