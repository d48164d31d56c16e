package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/aagtm/aagtm/admin"
	"github.com/aagtm/aagtm/config"
)

// operatorFlags select the nodes an operator command talks to.
type operatorFlags struct {
	admins  []string
	token   string
	timeout time.Duration
}

func (o *operatorFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringArrayVar(&o.admins, "admin", nil, "admin address host:port of a node to call instead of every node in the config; repeatable")
	f.StringVar(&o.token, "token", os.Getenv("AAGTM_ADMIN_TOKEN"), "admin token for mutating calls; env AAGTM_ADMIN_TOKEN (default: read security.admin_token_file)")
	f.DurationVar(&o.timeout, "timeout", 3*time.Second, "per-node request timeout")
}

// targets returns the nodes to call: --admin addresses, or every node in
// the config with its admin address.
func (o *operatorFlags) targets(g *globalFlags, cmd *cobra.Command) ([]config.Node, string, error) {
	token := o.token
	if len(o.admins) > 0 {
		var nodes []config.Node
		for _, a := range o.admins {
			nodes = append(nodes, config.Node{Name: a, Admin: a})
		}
		return nodes, token, nil
	}
	cfg, err := g.loadConfig(cmd.Flags())
	if err != nil {
		return nil, "", fmt.Errorf("%w\n(or pass --admin host:port to call a node without a config)", err)
	}
	if token == "" && cfg.Security.AdminTokenFile != "" {
		b, err := os.ReadFile(cfg.Security.AdminTokenFile)
		if err != nil {
			return nil, "", fmt.Errorf("security.admin_token_file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	return cfg.Nodes, token, nil
}

func newOperatorCmds(g *globalFlags) []*cobra.Command {
	return []*cobra.Command{newStatusCmd(g), newDrainCmd(g, true), newDrainCmd(g, false), newForceCmd(g)}
}

func newStatusCmd(g *globalFlags) *cobra.Command {
	var o operatorFlags
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every node's view: members, verdicts per vantage, lag, answers, events",
		Long: `status asks every node in the config (or the --admin addresses) for its view
and prints, per node, a table of members (verdict, votes up/down/abstaining, lag, RTT,
drained/lagging/holding), the current answer per database and region with its
reason, and recent failover and failback events with detection time and RPO
estimate. A node that does not answer is reported and the others still shown.`,
		Example: `  aagtm status -c /etc/aagtm/aagtm.yaml
  aagtm status --admin 127.0.0.1:8053 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return usagef("-o %q: use table or json", output)
			}
			nodes, token, err := o.targets(g, cmd)
			if err != nil {
				return err
			}
			type nodeStatus struct {
				Node   string        `json:"node"`
				Error  string        `json:"error,omitempty"`
				Status *admin.Status `json:"status,omitempty"`
			}
			statuses := make([]nodeStatus, len(nodes))
			results := admin.FanOut(cmd.Context(), nodes, token, o.timeout, func(ctx context.Context, i int, c *admin.Client) error {
				st, err := c.Status(ctx)
				statuses[i].Status = st
				return err
			})
			failed := 0
			for i, r := range results {
				statuses[i].Node = r.Node
				if r.Err != nil {
					statuses[i].Error = r.Err.Error()
					failed++
				}
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(statuses); err != nil {
					return err
				}
			} else {
				for _, s := range statuses {
					fmt.Fprintf(out, "== node %s ==\n", s.Node)
					if s.Error != "" {
						fmt.Fprintf(out, "unreachable: %s\n\n", s.Error)
						continue
					}
					if err := admin.RenderStatus(out, s.Status); err != nil {
						return err
					}
					fmt.Fprintln(out)
				}
			}
			if failed == len(nodes) {
				return errors.New("no node answered")
			}
			return nil
		},
	}
	o.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

func newDrainCmd(g *globalFlags, drain bool) *cobra.Command {
	var o operatorFlags
	use, short := "drain MEMBER", "Drain a member on every node: answered only when nothing else is eligible"
	if !drain {
		use, short = "undrain MEMBER", "Undo a drain on every node"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long: short + `.

The change is sent to every node in the config (or the --admin addresses) and
persisted in each node's state file. Each node's result is printed; a node
that is down is reported and the others still changed. Exit status 1 when any
node failed, so scripts can retry.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			nodes, token, err := o.targets(g, cmd)
			if err != nil {
				return err
			}
			results := admin.FanOut(cmd.Context(), nodes, token, o.timeout, func(ctx context.Context, _ int, c *admin.Client) error {
				if drain {
					return c.Drain(ctx, args[0])
				}
				return c.Undrain(ctx, args[0])
			})
			return report(cmd.OutOrStdout(), results)
		},
	}
	o.register(cmd)
	return cmd
}

func newForceCmd(g *globalFlags) *cobra.Command {
	var o operatorFlags
	var clear bool
	cmd := &cobra.Command{
		Use:   "force DATABASE [MEMBER]",
		Short: "Answer one member for a database on every node, whatever its health (--clear to undo)",
		Long: `force makes every node answer MEMBER for DATABASE to every client, whatever the
health checks say: for planned maintenance or when the operator knows better.
--clear returns the database to health-based answers. Sent to every node and
persisted; each node's result is printed.`,
		Example: `  aagtm force sessions sessions-euw
  aagtm force sessions --clear`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if clear != (len(args) == 1) {
				return usagef("give DATABASE MEMBER to force, or DATABASE --clear to undo")
			}
			nodes, token, err := o.targets(g, cmd)
			if err != nil {
				return err
			}
			results := admin.FanOut(cmd.Context(), nodes, token, o.timeout, func(ctx context.Context, _ int, c *admin.Client) error {
				if clear {
					return c.Unforce(ctx, args[0])
				}
				return c.Force(ctx, args[0], args[1])
			})
			return report(cmd.OutOrStdout(), results)
		},
	}
	o.register(cmd)
	cmd.Flags().BoolVar(&clear, "clear", false, "clear the forced answer")
	return cmd
}

// report prints each node's result and fails when any node failed.
func report(w io.Writer, results []admin.NodeResult) error {
	failed := 0
	for _, r := range results {
		if r.Err != nil {
			failed++
			fmt.Fprintf(w, "%-20s FAILED: %v\n", r.Node, r.Err)
			continue
		}
		fmt.Fprintf(w, "%-20s ok\n", r.Node)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d nodes failed", failed, len(results))
	}
	return nil
}
