package config

import (
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Setting declares one setting of the config file. Settings lists them
// all; see doc.go for how to add one.
type Setting struct {
	// Section is the docs/config.md section (### heading) it is listed in.
	Section string
	// Path is the setting's path in docs/config.md's notation:
	// "probes.interval", "databases.<name>.ttl", "nodes[].dns".
	Path string
	// Type is the type column of docs/config.md: duration, int, bool,
	// path, "list of IP", ...
	Type string
	// Value is the default the loader applies when the file leaves the
	// setting out; nil when there is none (the setting is required, or its
	// default is derived and described by Default). Durations are written
	// as text ("500ms"), lists as []string.
	Value any
	// Default describes the default in docs/config.md when Value does not
	// say it all ("required", "none", "the `report` address"); empty: the
	// docs show Value.
	Default string
	// Doc is the meaning column of docs/config.md.
	Doc string
	// Restart marks a setting a running node applies only after a
	// restart (listen addresses, socket layout); a reload warns about it.
	Restart bool
	// Credential marks a file holding a secret: the loader warns when
	// group or other users can read it (an error with Options.Strict).
	Credential bool

	// Field says where the value of a setting at a fixed path (no [] or
	// <name>) goes: it returns a pointer to the typed field of cfg. The
	// loader's generic pass (bind.go) reads the value, parses it by the
	// field's type (duration, int, uint32, bool, text, list of text, or a
	// type with a parseText method such as Quorum), applies Value when the
	// file leaves it out, resolves a relative Type "path" against the
	// config file's folder, checks the constraints below and stores it.
	// Per-entry settings (paths with [] or <name>) have none: build.go
	// binds them from the raw* structs with (*problems).setting, which
	// applies the same default and constraints.
	Field func(cfg *Config) any
	// Min and Max bound an int setting (ints) or a duration setting (text
	// such as "50ms"); nil leaves that side open.
	Min, Max any
	// Zero, when set, also accepts 0 outside Min..Max and says what it
	// means ("no cap"), for the error text.
	Zero string
	// Positive refuses zero (a duration that must not be 0s).
	Positive bool
	// Enum lists the accepted values of a text setting, or of each entry
	// of a list setting (which must then not repeat one); compared without
	// case and stored lower case.
	Enum []string
	// NonEmpty refuses an empty text or list.
	NonEmpty bool
	// Hint ends a constraint error after the default: what a good value
	// is, or why the bound is there.
	Hint string
	// Removed marks a setting that is no longer accepted: a file that sets
	// it is refused with "removed: " and this text, which names the
	// replacement.
	Removed string
}

// Overridable reports whether AAGTM_* variables and --path flags can set
// it: a setting outside lists and user-named mappings, with a default.
func (s Setting) Overridable() bool {
	return s.Value != nil && !strings.Contains(s.Path, "[]") && !strings.Contains(s.Path, "<name>")
}

// DocDefault is the default column of docs/config.md.
func (s Setting) DocDefault() string {
	if s.Default != "" {
		return s.Default
	}
	switch v := s.Value.(type) {
	case string:
		if v == "" {
			return "`\"\"`"
		}
		return "`" + v + "`"
	case []string:
		return "`[" + strings.Join(v, ", ") + "]`"
	default:
		return fmt.Sprintf("`%v`", v)
	}
}

// setting returns the declared setting at path; it panics when there is
// none, which a test of every use catches.
func setting(path string) Setting {
	s, ok := settings.byPath[path]
	if !ok {
		panic("config: no setting " + path + " in Settings")
	}
	return s
}

// defaultDuration is the declared default of a duration setting.
func defaultDuration(path string) time.Duration {
	s, _ := setting(path).Value.(string)
	d, err := time.ParseDuration(s)
	if err != nil {
		panic("config: setting " + path + " has no duration default")
	}
	return d
}

// defaultString is the declared default of a text setting.
func defaultString(path string) string {
	s, ok := setting(path).Value.(string)
	if !ok {
		panic("config: setting " + path + " has no text default")
	}
	return s
}

// defaultInt is the declared default of an integer setting.
func defaultInt(path string) int {
	n, ok := setting(path).Value.(int)
	if !ok {
		panic("config: setting " + path + " has no integer default")
	}
	return n
}

// defaultList is the declared default of a list setting.
func defaultList(path string) []string {
	s, ok := setting(path).Value.([]string)
	if !ok {
		panic("config: setting " + path + " has no list default")
	}
	return append([]string(nil), s...)
}

// Defaults applied by the loader, for callers outside this package.
var (
	// DefaultDNSListen are where a node's DNS server listens.
	DefaultDNSListen = defaultList("nodes[].dns")
	// DefaultAdminListen is where a node's admin HTTP API listens: loopback.
	DefaultAdminListen = defaultString("nodes[].admin")
	// DefaultDNSUDPAmplificationLimit caps a UDP reply without a valid
	// server cookie at this many times the query.
	DefaultDNSUDPAmplificationLimit = defaultInt("dns.udp_amplification_limit")
	// DefaultDNSTCPMaxConnections caps a node's open TCP connections.
	DefaultDNSTCPMaxConnections = defaultInt("dns.tcp.max_connections")
	// DefaultDNSTCPMaxConnectionsPerSource caps the TCP connections of one
	// IPv4 address or IPv6 /64.
	DefaultDNSTCPMaxConnectionsPerSource = defaultInt("dns.tcp.max_connections_per_source")
	// DefaultDNSTCPReadTimeout bounds the wait for a new connection's
	// first query.
	DefaultDNSTCPReadTimeout = defaultDuration("dns.tcp.read_timeout")
	// DefaultDNSTCPIdleTimeout bounds the wait between queries on a
	// connection.
	DefaultDNSTCPIdleTimeout = defaultDuration("dns.tcp.idle_timeout")
	// DefaultDNSTCPMaxQueries is the number of queries one connection may
	// send before the node closes it.
	DefaultDNSTCPMaxQueries = defaultInt("dns.tcp.max_queries")
)

// DefaultRedisPort is Redis's own port, that of a redis URL naming none:
// the last fallback of databases.<name>.members[].port, whose default is
// the URL's port.
const DefaultRedisPort = 6379

// overridable returns the settings AAGTM_* variables and --path flags can
// set, by path.
func (t *table) overridable() map[string]Setting {
	m := map[string]Setting{}
	for _, s := range t.list {
		if s.Overridable() {
			m[s.Path] = s
		}
	}
	return m
}

// EnvKeys returns the settings that AAGTM_* variables and --path.to.key
// flags can override, sorted.
func EnvKeys() []string {
	var keys []string
	for k := range settings.overridable() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// valueAt is one value found at a setting's path in the decoded file.
type valueAt struct {
	field string // the path with list indexes and names: agents[1].token_file
	value any
}

// valuesAt returns the values at path (Settings notation) in the decoded
// file: one per list entry for paths through lists, one per key for
// <name>. Absent values are left out.
func valuesAt(doc map[string]any, path string) []valueAt {
	var out []valueAt
	var walk func(cur any, field string, parts []string)
	walk = func(cur any, field string, parts []string) {
		if len(parts) == 0 {
			if cur != nil {
				out = append(out, valueAt{field, cur})
			}
			return
		}
		m, ok := cur.(map[string]any)
		if !ok {
			return
		}
		key, list := strings.CutSuffix(parts[0], "[]")
		sep := "."
		if field == "" {
			sep = ""
		}
		if key == "<name>" {
			names := make([]string, 0, len(m))
			for n := range m {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				walk(m[n], field+sep+n, parts[1:])
			}
			return
		}
		next, ok := m[key]
		if !ok {
			return
		}
		if !list {
			walk(next, field+sep+key, parts[1:])
			return
		}
		entries, _ := next.([]any)
		for i, e := range entries {
			walk(e, field+sep+key+"["+strconv.Itoa(i)+"]", parts[1:])
		}
	}
	walk(doc, "", strings.Split(path, "."))
	return out
}

// credentialFiles lists the files of the decoded file that hold secrets
// (settings marked Credential), relative paths resolved against baseDir.
func (t *table) credentialFiles(doc map[string]any, baseDir string) []credentialFile {
	var out []credentialFile
	for _, s := range t.list {
		if !s.Credential {
			continue
		}
		for _, v := range valuesAt(doc, s.Path) {
			p, _ := v.value.(string)
			if p == "" {
				continue
			}
			if !filepath.IsAbs(p) && baseDir != "" {
				p = filepath.Join(baseDir, p)
			}
			out = append(out, credentialFile{Field: v.field, Path: p})
		}
	}
	return out
}

// RestartNeeded lists the settings marked Restart whose value differs
// between old and cur for node (its own entry of nodes[]; other nodes'
// entries do not concern it). A running node applies every other change.
func RestartNeeded(old, cur *Config, node string) []string {
	return settings.restartNeeded(old, cur, node)
}

// restartNeeded is RestartNeeded for the settings of t.
func (t *table) restartNeeded(old, cur *Config, node string) []string {
	var out []string
	for _, s := range t.list {
		if !s.Restart {
			continue
		}
		if !reflect.DeepEqual(nodeValues(old, s.Path, node), nodeValues(cur, s.Path, node)) {
			out = append(out, s.Path)
		}
	}
	return out
}

// nodeValues returns the values at path in cfg's file, keeping only the
// entry of nodes[] named node.
func nodeValues(cfg *Config, path, node string) []any {
	var out []any
	for _, v := range valuesAt(cfg.file, path) {
		if strings.HasPrefix(path, "nodes[]") {
			entry := strings.SplitN(v.field, ".", 2)[0] // nodes[i]
			if nodeName(cfg.file, entry) != node {
				continue
			}
		}
		out = append(out, fmt.Sprint(v.value))
	}
	return out
}

// nodeName returns the name of the nodes[i] entry field names.
func nodeName(doc map[string]any, entry string) string {
	for _, v := range valuesAt(doc, "nodes[].name") {
		if strings.HasPrefix(v.field, entry+".") {
			s, _ := v.value.(string)
			return strings.TrimSpace(s)
		}
	}
	return ""
}
