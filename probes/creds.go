package probes

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"

	"google.golang.org/grpc/credentials"

	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/internal/reportwire"
)

// clientTLS is the agent's TLS config: verify the node against tls.ca (the
// system roots when unset), present tls.cert/tls.key when set. Without a
// bearer token the client certificate is the agent's identity, so it is
// required, and the id it names (reportwire.CertIdentity: URI SAN
// aagtm-agent://<id>, else CN) must be the agent's ID.
func clientTLS(t config.TLS, agentID string, haveToken bool) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CA != "" {
		pool, err := config.LoadCA(t.CA)
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	if t.Cert == "" && t.Key == "" {
		if !haveToken {
			return nil, fmt.Errorf("security.tls: agent %q needs cert and key (mTLS) or its own agents[].token_file to authenticate", agentID)
		}
		return c, nil
	}
	kp, err := config.LoadKeyPair(t)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(kp.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("security.tls.cert: %w", err)
	}
	if id := reportwire.CertIdentity(leaf); id != agentID {
		return nil, fmt.Errorf("security.tls.cert: the certificate names agent %q but the agent id is %q; "+
			"issue the agent a certificate with URI SAN aagtm-agent://%s (or CN=%s and no such URI SAN)", id, agentID, agentID, agentID)
	}
	c.Certificates = []tls.Certificate{kp}
	return c, nil
}

// tokenCreds sends the agent's bearer token with every RPC (one per
// report stream). The token file is read again for each, so a rotated
// token is used from the next reconnect on: when a node reloads with the
// new token and ends the old stream, the agent follows without a reload
// of its own.
type tokenCreds struct {
	field, file string // the setting (for errors) and the token file
	requireTLS  bool
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (c tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	tok, err := config.ReadToken(c.field, c.file)
	if err != nil {
		return nil, err
	}
	return map[string]string{"authorization": "Bearer " + tok}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: the
// token only travels in plaintext when security.insecure allowed it.
func (c tokenCreds) RequireTransportSecurity() bool { return c.requireTLS }

var _ credentials.PerRPCCredentials = tokenCreds{}
