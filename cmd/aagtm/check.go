package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aagtm/aagtm/config"
)

func newCheckCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Validate a config and print the resolved settings and RTO bounds",
		Long: `check loads the config exactly as serve and probe would (file, AAGTM_*
environment, flags), lists every problem with the field to fix, and on success
prints the resolved settings with their defaults filled in and, per database:

  detection  worst-case time to declare a member down = fall × interval + timeout
  RTO bound  detection + answer TTL (clients re-resolve after the TTL)
  failback   earliest return of a recovered member = rise × interval + failback_hold

It reads the credential files (agent tokens, admin token, TLS certificate,
key and CA) as serve and probe do. A credential file that group or other
can read is a warning, printed to stderr; with --strict it is an error, as
it is for serve and probe started with --strict.

Exit status 0 when valid, 1 when not.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig(cmd.Flags())
			if err != nil {
				return err
			}
			for _, w := range cfg.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			printResolved(cmd.OutOrStdout(), cfg)
			return nil
		},
	}
	g.addStrictFlag(cmd)
	return cmd
}

// Detection is the worst-case time for the probes to declare a member down.
func Detection(p config.Probes) time.Duration {
	return time.Duration(p.Fall)*p.Interval + p.Timeout
}

func printResolved(w io.Writer, cfg *config.Config) {
	fmt.Fprintf(w, "config %s is valid (hash %s)\n\n", cfg.Source, cfg.Hash)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	var ns []string
	for _, n := range cfg.Zone.NS {
		ns = append(ns, fmt.Sprintf("%s%v", n.Name, n.Addresses))
	}
	fmt.Fprintf(tw, "zone\t%s\n", cfg.Zone.Name)
	fmt.Fprintf(tw, "  ns\t%s\n", strings.Join(ns, " "))
	s := cfg.Zone.SOA
	fmt.Fprintf(tw, "  soa\tmbox %s refresh %s retry %s expire %s negative_ttl %s ttl %s\n", s.MBox, s.Refresh, s.Retry, s.Expire, s.NegativeTTL, s.TTL)
	for _, r := range cfg.Regions {
		def := ""
		if r.Name == cfg.DefaultRegion {
			def = " (default)"
		}
		fmt.Fprintf(tw, "region %s%s\tsubnets %v, nearness %s\n", r.Name, def, r.Subnets, strings.Join(cfg.Preference(r.Name), " > "))
	}
	p := cfg.Probes
	var checks []string
	for _, c := range p.Checks {
		checks = append(checks, string(c))
	}
	fmt.Fprintf(tw, "probes\tinterval %s timeout %s rise %d fall %d quorum %s stale_after %s heartbeat_interval %s read_only %v\n", p.Interval, p.Timeout, p.Rise, p.Fall, p.Quorum, p.StaleAfter, p.HeartbeatInterval, p.ReadOnly)
	fmt.Fprintf(tw, "  checks\t%s\n", strings.Join(checks, ", "))
	for _, a := range cfg.Agents {
		auth := ""
		if a.TokenFile != "" {
			auth = ", token file " + a.TokenFile
		}
		fmt.Fprintf(tw, "agent %s\tregion %s%s\n", a.ID, a.Region, auth)
	}
	for _, n := range cfg.Nodes {
		fmt.Fprintf(tw, "node %s\treports to %s (listen %s), dns %s, admin %s, state %s\n", n.Name, n.Report, n.Listen, strings.Join(n.DNS, " "), n.Admin, orNone(n.StateFile))
	}
	var sec string
	switch {
	case cfg.HasAgentTokens() && cfg.Security.TLS.Enabled():
		sec = "per-agent tokens over TLS"
	case cfg.HasAgentTokens():
		sec = "per-agent tokens over PLAINTEXT (security.insecure)"
	case cfg.Security.TLS.Enabled():
		sec = "mTLS (ca " + cfg.Security.TLS.CA + ")"
	default:
		sec = "INSECURE: unauthenticated plaintext reports"
	}
	fmt.Fprintf(tw, "security\t%s\n", sec)
	tw.Flush()

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DATABASE\tHOST\tMODE\tTTL\tLAG TOL\tALL DOWN\tDETECTION\tRTO BOUND\tFAILBACK\tMEMBERS")
	det := Detection(p)
	for _, d := range cfg.Databases {
		var ms []string
		for _, m := range d.Members {
			target := m.CNAME
			if target == "" {
				target = fmt.Sprint(m.Addresses)
			}
			ms = append(ms, fmt.Sprintf("%s@%s=%s", m.Name, m.Region, target))
		}
		failback := time.Duration(p.Rise)*p.Interval + d.FailbackHold
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Name, d.Host, d.Mode, d.TTL, d.LagTolerance, d.WhenAllDown, det, det+d.TTL, failback, strings.Join(ms, " "))
	}
	tw.Flush()
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
