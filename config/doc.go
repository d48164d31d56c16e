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
// restart to apply it, and whether it names a credential file. From it
// come the loader's defaults, the AAGTM_* variables and --path flags (every
// setting outside lists and <name> mappings with a Value), the reload rules
// (RestartNeeded), the credential-file permission checks, and the
// reference tables of docs/config.md. To add a setting:
//
//  1. Add its Setting to Settings, in docs order. A test (settings_test.go)
//     fails until the file format has the key, and the other way round.
//  2. Add its field to the raw* struct of its section (raw.go, the YAML
//     shape) and to the typed struct (types.go, with a doc comment), and
//     convert and validate it in build.go: validation errors name the path
//     and the fix; defaults come from the table (defaultDuration,
//     defaultString, defaultList), never from a literal.
//  3. Run `go test ./docs -run TestConfigReference -update` to regenerate
//     docs/config.md's reference (and add the AAGTM_* row to its
//     overridable table if the setting is overridable), then use the
//     setting where it matters.
package config
