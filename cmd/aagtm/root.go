package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/aagtm/aagtm/config"
)

// globalFlags are the flags every subcommand takes.
type globalFlags struct {
	configPath string
	logLevel   string
	logJSON    bool
	strict     bool // --strict on check, serve and probe
}

// addStrictFlag adds --strict to a command that loads the config.
func (g *globalFlags) addStrictFlag(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&g.strict, "strict", os.Getenv("AAGTM_STRICT") == "true",
		"refuse the config on warnings too: a credential file (token file, TLS key) that group or other can read; env AAGTM_STRICT=true")
}

func newRootCmd() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:   "aagtm",
		Short: "DNS global traffic manager for Redis Active-Active databases",
		Long: `aagtm answers a database hostname (cache.gtm.example.com) with the address of
the healthiest nearby Redis Active-Active member. Probe agents in every region
check every member (PING, keyspace SET/GET, replication lag) and stream reports
over gRPC to the GTM nodes, which serve the decision over authoritative DNS.

Start with:  aagtm demo             (a working GTM on localhost)
Then:        aagtm check -c FILE    (validate a config and see its RTO bounds)

Settings come from the config file, then AAGTM_<PATH> environment variables
(AAGTM_PROBES_INTERVAL=250ms), then --<path> flags (--probes.interval=250ms);
docs/config.md lists every setting.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVarP(&g.configPath, "config", "c", envOr("AAGTM_CONFIG", "/etc/aagtm/aagtm.yaml"), "config file (YAML), shared by every node and agent; env AAGTM_CONFIG")
	pf.StringVar(&g.logLevel, "log-level", envOr("AAGTM_LOG_LEVEL", "info"), "log level: trace, debug, info, warn, error; env AAGTM_LOG_LEVEL")
	pf.BoolVar(&g.logJSON, "log-json", os.Getenv("AAGTM_LOG_JSON") == "true", "log as JSON lines; env AAGTM_LOG_JSON=true")

	// Every scalar setting can be overridden as --path.to.key (after the
	// file and AAGTM_* variables). They are hidden to keep --help short;
	// docs/config.md lists them.
	for _, key := range config.EnvKeys() {
		pf.String(key, "", "override config setting "+key)
		_ = pf.MarkHidden(key)
	}

	root.AddCommand(
		newServeCmd(g),
		newProbeCmd(g),
		newCheckCmd(g),
		newDemoCmd(g),
		newVersionCmd(),
	)
	root.AddCommand(newOperatorCmds(g)...)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w\nsee '%s --help'", err, c.CommandPath())}
	})
	root.SetErr(os.Stderr)
	return root
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// newLogger builds the process's one logger.
func (g *globalFlags) newLogger(w io.Writer, name string) (hclog.Logger, error) {
	level := hclog.LevelFromString(g.logLevel)
	if level == hclog.NoLevel {
		return nil, usagef("--log-level %q: use trace, debug, info, warn or error", g.logLevel)
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:            name,
		Level:           level,
		Output:          w,
		JSONFormat:      g.logJSON,
		IncludeLocation: false,
		TimeFormat:      "2006-01-02T15:04:05.000Z07:00",
	}), nil
}

// loadConfig reads the config with AAGTM_* environment and dotted-flag
// overrides from fs; with --strict, warnings are errors.
func (g *globalFlags) loadConfig(fs *pflag.FlagSet) (*config.Config, error) {
	return config.Load(config.Options{Path: g.configPath, Flags: fs, Strict: g.strict})
}

// summarize renders the effective config for a log line, secrets masked.
func summarize(cfg *config.Config) []any {
	var members []string
	for _, d := range cfg.Databases {
		for _, m := range d.Members {
			members = append(members, fmt.Sprintf("%s(%s %s)", m.Name, m.Region, config.RedactURL(m.Redis)))
		}
	}
	return []any{
		"file", cfg.Source, "hash", cfg.Hash, "zone", cfg.Zone.Name,
		"regions", strings.Join(cfg.RegionNames(), ","), "default_region", cfg.DefaultRegion,
		"members", strings.Join(members, " "),
		"interval", cfg.Probes.Interval, "timeout", cfg.Probes.Timeout,
		"rise", cfg.Probes.Rise, "fall", cfg.Probes.Fall, "quorum", cfg.Probes.Quorum.String(),
	}
}
