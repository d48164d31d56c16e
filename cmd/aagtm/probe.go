package main

import (
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/aagtm/aagtm/probes"
)

func newProbeCmd(g *globalFlags) *cobra.Command {
	var agentID string
	cmd := &cobra.Command{
		Use:   "probe",
		Short: "Run a region's probe agent: check every member, report to every node",
		Long: `probe runs the probe agent of one region. Every probes.interval it runs the
configured checks (ping, echo, keyspace, lag, rest, command) against every member
of every database, each bounded by probes.timeout, and streams a report over gRPC
to every node in the config. It writes its region's replication heartbeat to the
local member(s) and reads every region's heartbeat from every member, which
measures replication lag without comparing clocks across hosts.

Unreachable nodes are retried with exponential backoff; for each, only the
newest result per member is kept. SIGHUP or a change of the config file
reloads the config.

Memory: unless the environment sets GOGC, probe runs with GOGC=50: with
thousands of members its live heap is tens of MB (about 10 KiB per member),
and the default GOGC=100 would let the heap grow to twice that.`,
		Example: `  aagtm probe -c /etc/aagtm/aagtm.yaml --agent probe-use`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, cfg, err := g.startDaemon(cmd)
			if err != nil {
				return err
			}
			if agentID == "" {
				if len(cfg.Agents) != 1 {
					return usagef("--agent: the config has %d agents; name this one (its id)", len(cfg.Agents))
				}
				agentID = cfg.Agents[0].ID
			}
			if os.Getenv("GOGC") == "" {
				debug.SetGCPercent(50)
			}
			agent, err := probes.NewAgent(cfg, agentID, logger)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			go g.watchReload(ctx, cmd, logger, agent.Reconfigure)
			return agent.Run(ctx)
		},
	}
	cmd.Flags().StringVar(&agentID, "agent", os.Getenv("AAGTM_AGENT"), "this agent's id in the config's agents list (by default one agent per region, id = region); env AAGTM_AGENT")
	g.addStrictFlag(cmd)
	return cmd
}
