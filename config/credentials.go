package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The credential files (token files, TLS keys) are read here, by the
// loader's validation and by the processes that use them (the node's
// ingest and admin API, the probe agent), so that `aagtm check` refuses
// exactly what `aagtm serve` and `aagtm probe` would refuse.

// ReadToken reads a bearer token file: its content, surrounding whitespace
// trimmed. field names the setting in errors (e.g. "agents[0].token_file").
func ReadToken(field, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%s: %s is empty; put a long random token in it", field, path)
	}
	return tok, nil
}

// LoadCA reads the PEM bundle security.tls.ca into a pool.
func LoadCA(path string) (*x509.CertPool, error) { return LoadCAFile("security.tls.ca", path) }

// LoadCAFile reads a PEM bundle into a pool; field names the setting in
// errors (e.g. "nodes[ns1].admin_tls.ca").
func LoadCAFile(field, path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: %s holds no PEM certificate", field, path)
	}
	return pool, nil
}

// LoadKeyPair loads this process's certificate and key (security.tls.cert
// and security.tls.key).
func LoadKeyPair(t TLS) (tls.Certificate, error) {
	if t.Cert == "" || t.Key == "" {
		return tls.Certificate{}, errors.New("security.tls: cert and key must both be set")
	}
	c, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("security.tls: load cert %s and key %s: %w", t.Cert, t.Key, err)
	}
	return c, nil
}

// credentialFile is a file holding a secret that the config names (a
// setting marked Credential).
type credentialFile struct {
	// Field is the setting's path, e.g. agents[0].token_file.
	Field string
	// Path is the file, resolved against the config file's folder.
	Path string
}

// exposedMode is the permission bits a credential file must not have:
// any access by group or other.
const exposedMode = 0o077

// exposure returns a warning when file can be read or written by group or
// other users, "" otherwise (or when it cannot be inspected: reading it
// reports that).
func exposure(f credentialFile) string {
	fi, err := os.Stat(f.Path)
	if err != nil || fi.Mode().Perm()&exposedMode == 0 {
		return ""
	}
	return fmt.Sprintf("%s: %s has mode %04o, so other users of this host can read it: run chmod 600 %s (--strict makes this an error)",
		f.Field, f.Path, fi.Mode().Perm(), f.Path)
}

// checkRedisURL reports whether s is a URL the probes can use: the same
// parser the agent uses (go-redis), plus the schemes aagtm accepts. The
// error never contains the URL's password.
func checkRedisURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		// url.Parse's message quotes the URL and the bad escape, which
		// may be part of the password: say what to fix instead.
		return errors.New("not URL syntax: percent-encode special characters in the user and password (% as %25, @ as %40, / as %2F) and give host:port")
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" || u.Host == "" {
		return errors.New("write redis://host:port or rediss://user:password@host:port")
	}
	if _, err := redis.ParseURL(s); err != nil {
		msg := err.Error()
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, redacted)
		}
		return errors.New(msg)
	}
	return nil
}

// redacted replaces a password in logs, errors and hashes.
const redacted = "xxxxx"

// RedactURL hides the password of a URL for logs, errors and hashes. It
// works on text that does not parse as a URL too: everything between the
// first ':' after the scheme and the last '@' is masked.
func RedactURL(s string) string {
	prefix, rest := "", s
	if i := strings.Index(s, "://"); i >= 0 {
		prefix, rest = s[:i+3], s[i+3:]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return s
	}
	colon := strings.Index(rest[:at], ":")
	if colon < 0 {
		return s
	}
	return prefix + rest[:colon+1] + redacted + rest[at:]
}
