package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// EnvPrefix prefixes the environment variables that override file settings:
// AAGTM_PROBES_INTERVAL overrides probes.interval.
const EnvPrefix = "AAGTM"

// Options says where the configuration comes from.
type Options struct {
	// Path is the YAML file. Required.
	Path string
	// Flags, when set, override the file and the environment: every changed
	// flag whose name is a config path (e.g. --probes.interval) is applied.
	Flags *pflag.FlagSet
	// Environ is the environment to read AAGTM_* variables from; nil means
	// the process environment.
	Environ []string
	// Strict turns warnings (credential files other users can read) into
	// errors: `--strict` on check, serve and probe.
	Strict bool
}

// Load reads, decodes and validates the configuration. The error lists every
// problem found, each naming the field and the fix; a nil error means the
// returned Config is complete and valid.
func Load(opts Options) (*Config, error) {
	if opts.Path == "" {
		return nil, errors.New("config: no file given: pass --config FILE (see examples/)")
	}
	data, err := os.ReadFile(opts.Path)
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", opts.Path, err)
	}
	cfg, err := parse(data, opts, filepath.Dir(opts.Path))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", opts.Path, err)
	}
	cfg.Source = opts.Path
	return cfg, nil
}

// Parse decodes and validates YAML configuration text, with no environment
// or flag overrides.
func Parse(data []byte) (*Config, error) {
	return parse(data, Options{Environ: []string{}}, "")
}

func parse(data []byte, opts Options, baseDir string) (*Config, error) {
	return settings.parse(data, opts, baseDir)
}

// parse loads data by the settings of t: defaults and overrides into
// viper, the generic pass for settings at fixed paths, then build for the
// per-entry sections and the rules across settings.
func (t *table) parse(data []byte, opts Options, baseDir string) (*Config, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	over := t.overridable()
	for key, s := range over {
		v.SetDefault(key, s.Value)
	}
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	applyEnv(v, over, opts.Environ)
	if opts.Flags != nil {
		var flagErr error
		opts.Flags.Visit(func(f *pflag.Flag) {
			if !strings.Contains(f.Name, ".") {
				return
			}
			if _, ok := over[f.Name]; !ok {
				flagErr = errors.Join(flagErr, fmt.Errorf("flag --%s: not a config setting", f.Name))
				return
			}
			setValue(v, over[f.Name], f.Value.String())
		})
		if flagErr != nil {
			return nil, flagErr
		}
	}

	var raw rawConfig
	if err := v.Unmarshal(&raw, func(dc *mapstructure.DecoderConfig) {
		dc.WeaklyTypedInput = true
	}); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	doc := v.AllSettings()
	problems := t.shapeProblems(doc)
	cfg, errs := t.build(&raw, doc, baseDir)
	problems = append(problems, errs...)
	cfg.file = doc
	for _, f := range t.credentialFiles(cfg.file, baseDir) {
		if w := exposure(f); w != "" {
			if opts.Strict {
				problems = append(problems, errors.New(w))
			} else {
				cfg.Warnings = append(cfg.Warnings, w)
			}
		}
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	cfg.Hash = hashOf(cfg)
	return cfg, nil
}

// applyEnv sets every AAGTM_* variable whose name maps to a setting of
// over: AAGTM_PROBES_STALE_AFTER → probes.stale_after.
func applyEnv(v *viper.Viper, over map[string]Setting, environ []string) {
	if environ == nil {
		environ = os.Environ()
	}
	byEnv := map[string]Setting{}
	for key, s := range over {
		byEnv[EnvPrefix+"_"+strings.ToUpper(strings.NewReplacer(".", "_").Replace(key))] = s
	}
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		if s, ok := byEnv[name]; ok {
			setValue(v, s, val)
		}
	}
}

// setValue sets an override given as text; list settings take comma- or
// space-separated values.
func setValue(v *viper.Viper, s Setting, val string) {
	if _, isList := s.Value.([]string); isList {
		v.Set(s.Path, splitList(val))
		return
	}
	v.Set(s.Path, val)
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		out = append(out, f)
	}
	return out
}

// hashOf fingerprints the settings every node and agent must agree on.
func hashOf(cfg *Config) string {
	sum := sha256.Sum256(hashInput(cfg))
	return hex.EncodeToString(sum[:8])
}

// hashInput is what hashOf hashes. No secret feeds it (the hash is
// published in /v1/status and in every ack): URL passwords are masked, and
// credential paths, which are host-local anyway, are left out.
func hashInput(cfg *Config) []byte {
	c := *cfg
	c.Source, c.Hash, c.Warnings = "", "", nil
	// Host-local settings (credential paths, DNS tuning) may differ between
	// hosts through AAGTM_* overrides without the hosts disagreeing.
	c.Security, c.DNS = Security{}, DNS{}
	c.Agents = make([]Agent, len(cfg.Agents))
	for i, a := range cfg.Agents {
		a.TokenFile = ""
		c.Agents[i] = a
	}
	c.Databases = make([]Database, len(cfg.Databases))
	for i, d := range cfg.Databases {
		d.Members = make([]Member, len(d.Members))
		for j, m := range cfg.Databases[i].Members {
			m.Redis, m.REST.URL = RedactURL(m.Redis), RedactURL(m.REST.URL)
			d.Members[j] = m
		}
		c.Databases[i] = d
	}
	b, err := json.Marshal(c)
	if err != nil { // cannot happen: plain structs, strings and numbers
		panic("config: hash: " + err.Error())
	}
	return b
}
