// Package config loads the aagtm configuration (YAML file, AAGTM_*
// environment, command-line flags) once into typed, validated structs.
//
// It is the only package that knows about viper. Validation collects every
// problem, each naming the field path and the fix. It starts nothing and
// watches nothing: reloading is the caller's job.
package config
