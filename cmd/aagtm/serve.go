package main

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/aagtm/aagtm/internal/node"
)

func newServeCmd(g *globalFlags) *cobra.Command {
	var (
		nodeName  string
		opts      node.Options
		dnsListen []string
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a GTM node: authoritative DNS, report ingest and admin API",
		Long: `serve runs one GTM node of the zone's NS set. It receives probe reports over
gRPC, decides answers with the policy engine and serves them over DNS (UDP and
TCP), with an admin HTTP API for status, drain/force and /metrics.

The node's listen addresses come from its entry in the config's nodes list
(chosen with --node); the flags below override them. SIGHUP, or a change of the
config file, reloads the config: a valid one swaps in without dropping queries,
an invalid one is logged field by field and the old one keeps serving.
SIGINT/SIGTERM shut down gracefully.

Memory: unless the environment sets them, serve runs with GOGC=400 (fewer
collections on the query path) and a soft memory limit GOMEMLIMIT=240MiB
(collections become more frequent only as the heap nears it, instead of
letting the heap grow to five times the live data of thousands of members).`,
		Example: `  aagtm serve -c /etc/aagtm/aagtm.yaml --node ns1
  AAGTM_NODE=ns2 aagtm serve --dns 0.0.0.0:53 --dns [::]:53`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, cfg, err := g.startDaemon(cmd)
			if err != nil {
				return err
			}
			if nodeName == "" {
				if len(cfg.Nodes) != 1 {
					return usagef("--node: the config lists %d nodes; name the one to run", len(cfg.Nodes))
				}
				nodeName = cfg.Nodes[0].Name
			}
			if os.Getenv("GOGC") == "" {
				// The live heap is small (the answer view); collecting less
				// often keeps GC work off the query path. GOGC overrides.
				debug.SetGCPercent(400)
			}
			if os.Getenv("GOMEMLIMIT") == "" {
				// With thousands of members the live heap is tens of MB,
				// and GOGC 400 alone would let the heap grow to five times
				// that. The soft limit makes collections more frequent
				// only as the heap nears it. GOMEMLIMIT overrides.
				debug.SetMemoryLimit(defaultMemoryLimit)
			}
			opts.DNS = dnsListen
			n, err := node.New(cfg, nodeName, logger, opts)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			go g.watchReload(ctx, cmd, logger, n.Reload)
			return n.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&nodeName, "node", os.Getenv("AAGTM_NODE"), "which entry of the config's nodes this process is; env AAGTM_NODE (default: the only node)")
	f.StringArrayVar(&dnsListen, "dns", nil, "DNS listen address host:port, UDP and TCP; repeatable (default: the node's dns list)")
	f.StringVar(&opts.Ingest, "ingest", "", "report ingest (gRPC) listen address (default: the node's listen or report address)")
	f.StringVar(&opts.Admin, "admin", "", "admin HTTP listen address (default: the node's admin, 127.0.0.1:8053)")
	f.StringVar(&opts.StateFile, "state-file", "", "where overrides and the last decision persist (default: the node's state_file)")
	g.addStrictFlag(cmd)
	return cmd
}

// defaultMemoryLimit is serve's soft memory limit when GOMEMLIMIT is unset.
const defaultMemoryLimit = 240 << 20

// logConfigErrors logs every problem of a config error on its own line.
func logConfigErrors(logger interface{ Error(string, ...any) }, err error) {
	type multi interface{ Unwrap() []error }
	var errs []error
	for e := err; e != nil; {
		if m, ok := e.(multi); ok {
			errs = m.Unwrap()
			break
		}
		next := unwrapOnce(e)
		if next == nil {
			break
		}
		e = next
	}
	if len(errs) == 0 {
		logger.Error("invalid config", "error", err)
		return
	}
	for _, e := range errs {
		logger.Error("invalid config", "problem", e.Error())
	}
	logger.Error(fmt.Sprintf("config has %d problems", len(errs)))
}

func unwrapOnce(e error) error {
	u, ok := e.(interface{ Unwrap() error })
	if !ok {
		return nil
	}
	return u.Unwrap()
}
