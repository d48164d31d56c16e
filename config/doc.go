// Package config loads the aagtm configuration (YAML file, AAGTM_*
// environment, command-line flags) once into typed, validated structs.
//
// It is the only package that knows about viper. Validation collects every
// problem, each naming the field path and the fix. It starts nothing and
// watches nothing: reloading is the caller's job. It reads the credential
// files the config names (tokens, TLS certificate, key and CA) as the node
// and the agent do, so that `aagtm check` refuses what they would refuse.
//
// # Adding a setting
//
// Settings (settings_table.go) declares every setting once: its path,
// section, type, default, documentation, whether a running node needs a
// restart to apply it, whether it names a credential file, where its value
// goes (Field) and its constraints (Min, Max, Zero, Positive, Enum,
// NonEmpty, Hint). From it come the loader's defaults, the AAGTM_*
// variables and --path flags (every setting outside lists and <name>
// mappings with a Value), the unknown-key check, the parsing, defaulting
// and range checks of every value (bind.go), the reload rules
// (RestartNeeded), the credential-file permission checks, and
// docs/config.md's reference and overridable tables.
//
// A setting at a fixed path (zone.soa.*, default_region, probes.*,
// security.*, dns.*) is one row plus its use:
//
//  1. Add its Setting to Settings, in docs order, with a Field returning a
//     pointer to its typed field (add the field, with a doc comment, to
//     the struct of its section in types.go if it is new) and its
//     constraints. The generic pass reads the value, parses it by the
//     field's type, applies Value when the file leaves it out, checks the
//     constraints and stores it; errors name the path, the fix and the
//     default. settings_test.go's TestAddingASettingIsOneRow shows it.
//  2. Rules that span settings (timeout below interval, per-source cap
//     within the total) go in the section's build* function in build.go,
//     after the generic pass.
//  3. Run `go test ./docs -run TestConfigReference -update` to regenerate
//     docs/config.md's tables, then use the setting where it matters.
//
// Per-entry settings (zone.ns[].*, regions.<name>.*, databases.<name>.*,
// agents[].*, nodes[].*) keep their raw* struct in raw.go: an entry is
// decoded as a whole, its fields depend on each other (addresses or cname,
// admin_tls' files together) and errors name the entry by its index or
// name, which a binding by Field from *Config cannot express without more
// machinery than it saves. For one, add the row (no Field; constraints
// apply all the same), the raw field, the typed field, and one line in its
// build* function: (*problems).setting(field, path, raw value, &typed),
// which parses, defaults and range-checks it like the generic pass.
package config
