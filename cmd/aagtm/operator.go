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

// adminTokenEnv names the environment variable that holds the admin token.
const adminTokenEnv = "AAGTM_ADMIN_TOKEN"

// operatorFlags select the nodes an operator command talks to and the
// token it sends.
type operatorFlags struct {
	admins    []string
	ca        string
	tokenFile string
	argvToken string // --token, refused: see tokenOnArgv
	timeout   time.Duration
}

// tokenOnArgv explains why --token is refused rather than accepted.
const tokenOnArgv = "--token is not accepted: a token on the command line is visible to every local user in ps and /proc, " +
	"and lands in shell history; use --token-file FILE or " + adminTokenEnv

func (o *operatorFlags) register(cmd *cobra.Command, mutating bool) {
	f := cmd.Flags()
	f.StringArrayVar(&o.admins, "admin", nil, "admin address of a node to call instead of every node in the config: host:port (http) or https://host:port; repeatable")
	f.StringVar(&o.ca, "ca", "", "PEM CA bundle to verify https --admin addresses with (default: system roots); nodes from the config use their admin_tls.ca")
	f.DurationVar(&o.timeout, "timeout", 3*time.Second, "per-node request timeout")
	if mutating {
		f.StringVar(&o.tokenFile, "token-file", "", "file holding the admin token (default: env "+adminTokenEnv+", then the config's security.admin_token_file)")
		f.StringVar(&o.argvToken, "token", "", "refused: "+tokenOnArgv)
		_ = f.MarkHidden("token")
	}
}

// targets returns the nodes to call (--admin addresses, or every node in
// the config) and, for mutating commands, the admin token: from
// --token-file, else AAGTM_ADMIN_TOKEN, else security.admin_token_file.
func (o *operatorFlags) targets(g *globalFlags, cmd *cobra.Command, mutating bool) ([]config.Node, string, error) {
	if o.argvToken != "" {
		return nil, "", usagef("%s", tokenOnArgv)
	}
	var nodes []config.Node
	var cfg *config.Config
	if len(o.admins) > 0 {
		for _, a := range o.admins {
			nodes = append(nodes, config.Node{Name: a, Admin: a, AdminTLS: config.AdminTLS{CA: o.ca}})
		}
	} else {
		var err error
		if cfg, err = g.loadConfig(cmd.Flags()); err != nil {
			return nil, "", fmt.Errorf("%w\n(or pass --admin host:port to call a node without a config)", err)
		}
		nodes = cfg.Nodes
	}
	if !mutating {
		return nodes, "", nil
	}
	token, err := o.token(cfg)
	if err != nil {
		return nil, "", err
	}
	if token != "" {
		for _, n := range nodes {
			if u := admin.AdminURL(n); admin.TokenInClear(u) {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: sending the admin token to node %s over plain HTTP (%s): anyone on the path can read it; "+
					"set nodes[].admin_tls, or call the node on loopback (ssh tunnel)\n", n.Name, u)
			}
		}
	}
	return nodes, token, nil
}

// token reads the admin token; cfg is nil with --admin.
func (o *operatorFlags) token(cfg *config.Config) (string, error) {
	switch {
	case o.tokenFile != "":
		return config.ReadToken("--token-file", o.tokenFile)
	case strings.TrimSpace(os.Getenv(adminTokenEnv)) != "":
		return strings.TrimSpace(os.Getenv(adminTokenEnv)), nil
	case cfg != nil && cfg.Security.AdminTokenFile != "":
		return config.ReadToken("security.admin_token_file", cfg.Security.AdminTokenFile)
	}
	return "", nil
}

func newOperatorCmds(g *globalFlags) []*cobra.Command {
	return []*cobra.Command{newStatusCmd(g), newDrainCmd(g, true), newDrainCmd(g, false), newForceCmd(g), newAckStateCmd(g)}
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
			nodes, token, err := o.targets(g, cmd, false)
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
	o.register(cmd, false)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

// changeFlags are the why and how long of an override change.
type changeFlags struct {
	reason string
	ttl    time.Duration
}

func (c *changeFlags) register(cmd *cobra.Command, expires bool) {
	cmd.Flags().StringVar(&c.reason, "reason", "", "why, recorded with the change and shown by aagtm status (e.g. \"maintenance\")")
	if expires {
		cmd.Flags().DurationVar(&c.ttl, "for", 0, "end the override by itself this long after it is taken, on every node at the same moment (e.g. 30m; default: until removed)")
	}
}

func (c *changeFlags) change() (admin.Change, error) {
	if c.ttl < 0 {
		return admin.Change{}, usagef("--for %s: give a positive duration such as 30m", c.ttl)
	}
	return admin.Change{Reason: c.reason, For: c.ttl}, nil
}

// overrideHelp is the part of the override commands' help on how a change
// spreads.
const overrideHelp = `The change is sent to every node in the config (or the --admin addresses);
the command succeeds when one node has taken it: the nodes exchange their
override sets over their admin listeners (with the admin token), so the
others, including nodes that are down now, converge from it within seconds
of reaching it. Each node's result is printed. Exit status 1 only when no
node took the change.`

func newDrainCmd(g *globalFlags, drain bool) *cobra.Command {
	var o operatorFlags
	var cf changeFlags
	use, short := "drain MEMBER", "Drain a member on every node: answered only when nothing else is eligible"
	if !drain {
		use, short = "undrain MEMBER", "Undo a drain on every node"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  short + ".\n\n" + overrideHelp,
		Example: `  aagtm drain cache-use --reason "maintenance" --for 30m
  aagtm undrain cache-use --reason "maintenance done"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ch, err := cf.change()
			if err != nil {
				return err
			}
			nodes, token, err := o.targets(g, cmd, true)
			if err != nil {
				return err
			}
			results := admin.FanOut(cmd.Context(), nodes, token, o.timeout, func(ctx context.Context, _ int, c *admin.Client) error {
				var err error
				if drain {
					_, err = c.Drain(ctx, args[0], ch)
				} else {
					_, err = c.Undrain(ctx, args[0], ch)
				}
				return err
			})
			return reportChange(cmd.OutOrStdout(), results)
		},
	}
	o.register(cmd, true)
	cf.register(cmd, drain)
	return cmd
}

func newForceCmd(g *globalFlags) *cobra.Command {
	var o operatorFlags
	var cf changeFlags
	var clear bool
	cmd := &cobra.Command{
		Use:   "force DATABASE [MEMBER]",
		Short: "Answer one member for a database on every node, whatever its health (--clear to undo)",
		Long: `force makes every node answer MEMBER for DATABASE to every client, whatever the
health checks say: for planned maintenance or when the operator knows better.
--clear returns the database to health-based answers.

` + overrideHelp,
		Example: `  aagtm force sessions sessions-euw --reason "us-east maintenance" --for 2h
  aagtm force sessions --clear`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if clear != (len(args) == 1) {
				return usagef("give DATABASE MEMBER to force, or DATABASE --clear to undo")
			}
			ch, err := cf.change()
			if err != nil {
				return err
			}
			if clear && ch.For > 0 {
				return usagef("--for applies to a force, not to --clear")
			}
			nodes, token, err := o.targets(g, cmd, true)
			if err != nil {
				return err
			}
			results := admin.FanOut(cmd.Context(), nodes, token, o.timeout, func(ctx context.Context, _ int, c *admin.Client) error {
				var err error
				if clear {
					_, err = c.Unforce(ctx, args[0], ch)
				} else {
					_, err = c.Force(ctx, args[0], args[1], ch)
				}
				return err
			})
			return reportChange(cmd.OutOrStdout(), results)
		},
	}
	o.register(cmd, true)
	cf.register(cmd, true)
	cmd.Flags().BoolVar(&clear, "clear", false, "clear the forced answer")
	return cmd
}

func newAckStateCmd(g *globalFlags) *cobra.Command {
	var o operatorFlags
	cmd := &cobra.Command{
		Use:   "ack-state",
		Short: "Acknowledge a node's report of an unusable state file, once its drains and forces are re-applied",
		Long: `A node that finds its state file unusable at start (corrupt, truncated, of
another version, unreadable) moves it aside as <file>.corrupt-<time>, starts
with no drains or forces, and reports it in 'aagtm status' (with what the file
held) until an operator acknowledges it. Re-apply the lost drains and forces
(aagtm drain, aagtm force), then run ack-state. Sent to every node in the config
(or the --admin addresses); a node with nothing to acknowledge answers ok.
The moved-aside file is kept: delete it when you no longer need it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			nodes, token, err := o.targets(g, cmd, true)
			if err != nil {
				return err
			}
			results := admin.FanOut(cmd.Context(), nodes, token, o.timeout, func(ctx context.Context, _ int, c *admin.Client) error {
				return c.AckCorruptState(ctx)
			})
			return report(cmd.OutOrStdout(), results)
		},
	}
	o.register(cmd, true)
	return cmd
}

// reportChange prints each node's result of an override change and
// succeeds when one node took it: the others converge from it.
func reportChange(w io.Writer, results []admin.NodeResult) error {
	var took, failed []string
	for _, r := range results {
		if r.Err != nil {
			failed = append(failed, r.Node)
			fmt.Fprintf(w, "%-20s FAILED: %v\n", r.Node, r.Err)
			continue
		}
		took = append(took, r.Node)
		fmt.Fprintf(w, "%-20s ok\n", r.Node)
	}
	if len(took) == 0 {
		return fmt.Errorf("no node took the change (%d of %d failed)", len(failed), len(results))
	}
	fmt.Fprintf(w, "taken by %s", strings.Join(took, ", "))
	if len(failed) > 0 {
		fmt.Fprintf(w, "; %s converge from them once they reach them (aagtm status shows which nodes hold each override)", strings.Join(failed, ", "))
	}
	fmt.Fprintln(w)
	return nil
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
