package probes

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc/credentials"

	"github.com/aagtm/aagtm/config"
)

// errNoProtection is returned when the report channel would be plaintext
// without Security.Insecure.
var errNoProtection = errors.New("security: the report channel has no protection: " +
	"set security.tls (cert, key and ca) for mTLS, or security.token_file with security.tls " +
	"for bearer tokens over TLS; security.insecure: true allows plaintext (tests and demos only)")

// readToken reads a bearer token file: its content, surrounding whitespace
// trimmed.
func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("security.token_file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("security.token_file: %s is empty; put the shared token in it", path)
	}
	return tok, nil
}

// loadCA reads a PEM bundle into a pool.
func loadCA(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("security.tls.ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("security.tls.ca: %s holds no PEM certificate", path)
	}
	return pool, nil
}

// loadKeyPair loads this process's certificate and key.
func loadKeyPair(t config.TLS) (tls.Certificate, error) {
	if t.Cert == "" || t.Key == "" {
		return tls.Certificate{}, errors.New("security.tls: cert and key must both be set")
	}
	c, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("security.tls: load cert %s and key %s: %w", t.Cert, t.Key, err)
	}
	return c, nil
}

// clientTLS is the agent's TLS config: verify the node against tls.ca (the
// system roots when unset), present tls.cert/tls.key when set. Without a
// bearer token the client certificate is the agent's identity, so it is
// required, and its common name must be the agent's ID.
func clientTLS(t config.TLS, agentID string, haveToken bool) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CA != "" {
		pool, err := loadCA(t.CA)
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	if t.Cert == "" && t.Key == "" {
		if !haveToken {
			return nil, errors.New("security.tls: an agent needs cert and key (mTLS) or security.token_file to authenticate")
		}
		return c, nil
	}
	kp, err := loadKeyPair(t)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(kp.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("security.tls.cert: %w", err)
	}
	if cn := leaf.Subject.CommonName; cn != agentID {
		return nil, fmt.Errorf("security.tls.cert: the certificate's common name is %q but the agent id is %q; "+
			"issue the agent a certificate with CN=%s", cn, agentID, agentID)
	}
	c.Certificates = []tls.Certificate{kp}
	return c, nil
}

// serverTLS is the node's TLS config: serve tls.cert/tls.key; with tls.ca,
// verify client certificates against it (required when there is no token,
// verified if given otherwise).
func serverTLS(t config.TLS, haveToken bool) (*tls.Config, error) {
	kp, err := loadKeyPair(t)
	if err != nil {
		return nil, err
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{kp}, NextProtos: []string{"h2"}}
	switch {
	case t.CA != "":
		pool, err := loadCA(t.CA)
		if err != nil {
			return nil, err
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
		if haveToken {
			c.ClientAuth = tls.VerifyClientCertIfGiven
		}
	case !haveToken:
		return nil, errors.New("security.tls.ca: a node needs ca to verify agent certificates (mTLS), or security.token_file")
	}
	return c, nil
}

// tokenCreds sends the bearer token with every RPC.
type tokenCreds struct {
	token      string
	requireTLS bool
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (c tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + c.token}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: the
// token only travels in plaintext when security.insecure allowed it.
func (c tokenCreds) RequireTransportSecurity() bool { return c.requireTLS }

var _ credentials.PerRPCCredentials = tokenCreds{}
