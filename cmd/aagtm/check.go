package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/probes"
)

func newCheckCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Validate a config and print the resolved settings and RTO bounds",
		Long: `check loads the config exactly as serve and probe would (file, AAGTM_*
environment, flags), lists every problem with the field to fix, and on success
prints the resolved settings with their defaults filled in and, per database:

  detection  worst-case time from a member killed or hung until the nodes
             answer the next one = fall × interval + timeout + spread window
             (members × 100µs, at most interval/2 and 500ms), plus the
             report's transit from agent to node
  RTO bound  worst-case time until a client of a recursive resolver gets the
             next member = detection + ttl + 1s (resolvers count TTLs in
             whole seconds); the client's own reconnect comes on top
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

// resolverTTLSlack is how much longer than its TTL a recursive resolver
// may serve an answer. Resolvers count TTLs in whole seconds: unbound keeps
// the expiry as a whole second and answers with TTL 0 until its clock has
// passed it, so an answer fetched just after a second began is served for up
// to TTL + 1 s.
const resolverTTLSlack = time.Second

// timingBounds returns the worst-case detection time and RTO of database d
// under cfg, for a member that is killed (connections refused) or hung
// (connections accepted, nothing answered). They are what `aagtm check`
// prints and what the README and docs/operations.md describe; the e2e test
// TestBoundsHold measures both fault kinds against them.
//
// Detection runs from the fault until the nodes answer the next member:
//
//	detection = fall × interval + timeout + report delay
//
// In the worst case the fault comes just after the member answered a probe.
// An agent starts a round every interval whatever the last one did (rounds
// run in the background, so a round that waited for a timeout delays no
// other), and the fall-th round after the one answered completes the run of
// failures. The member's failure is known at most the timeout after its
// probe started, and its report leaves at most the report delay later
// (probes.ReportDelay): the spread window (members × 100 µs, at most
// interval/2 and 500 ms) when a round reports in one piece, the time for
// the next chunk (100 ms) and the sender's next slot (1/15 s) when a round
// longer than 100 ms reports in chunks. A killed member fails at once, a
// hung one at the timeout; both fit. Each agent of
// a quorum obeys the bound, so the quorum does. Nodes re-evaluate on every
// report, so only the report's one-way transit from agent to node comes on
// top (milliseconds within a region, the WAN latency across regions).
//
// The RTO runs from the fault until a client of a recursive resolver gets
// the next member:
//
//	RTO = detection + ttl + 1 s
//
// The resolver may have fetched the old answer just before the node
// switched, and serves it for its TTL plus the second its whole-second
// counting adds (resolverTTLSlack). The client's own reconnect, and
// resolvers that raise small TTLs to a floor, come on top.
//
// Both are rounded up to the millisecond.
func timingBounds(cfg *config.Config, d config.Database) (detection, rto time.Duration) {
	members := 0 // every agent probes every member of every database
	for _, db := range cfg.Databases {
		members += len(db.Members)
	}
	p := cfg.Probes
	detection = time.Duration(p.Fall)*p.Interval + p.Timeout + probes.ReportDelay(p.Interval, members)
	detection = (detection + time.Millisecond - 1).Truncate(time.Millisecond)
	rto = detection + d.TTL.Truncate(time.Second) + resolverTTLSlack
	return detection, rto
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
		adminTLS := ""
		if n.AdminTLS.Enabled() {
			adminTLS = " (https)"
		}
		fmt.Fprintf(tw, "node %s\treports to %s (listen %s), dns %s, admin %s%s, state %s\n", n.Name, n.Report, n.Listen, strings.Join(n.DNS, " "), n.Admin, adminTLS, orNone(n.StateFile))
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
	switch {
	case cfg.Security.AdminTokenFile != "":
		sec = "drain/force need the token in " + cfg.Security.AdminTokenFile
	case cfg.Security.Insecure:
		sec = "drain/force open WITHOUT a token, on loopback only (security.insecure)"
	default:
		sec = "drain/force refused: no security.admin_token_file"
	}
	fmt.Fprintf(tw, "  admin\t%s\n", sec)
	tw.Flush()

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DATABASE\tHOST\tMODE\tTTL\tLAG TOL\tALL DOWN\tDETECTION\tRTO BOUND\tFAILBACK\tMEMBERS")
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
		det, rto := timingBounds(cfg, d)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Name, d.Host, d.Mode, d.TTL, d.LagTolerance, d.WhenAllDown, det, rto, failback, strings.Join(ms, " "))
	}
	tw.Flush()
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
