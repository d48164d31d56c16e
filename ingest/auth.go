package ingest

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/internal/reportwire"
)

// Authentication methods, the method of a principal.
const (
	methodToken    = "token"
	methodMTLS     = "mtls"
	methodInsecure = "insecure"
)

// view is everything derived from one config.
type view struct {
	cfg     *config.Config
	hash    string
	agents  map[string]config.Agent
	members map[string]bool
	mode    string         // "tls" or "insecure"
	tls     *tls.Config    // server TLS config in "tls" mode
	caPool  *x509.CertPool // verifies client certificates; nil without tls.ca
	// tokens maps the SHA-256 of each agent's token to its agent id; empty
	// without agents[].token_file.
	tokens map[[32]byte]string
	err    error // why this config cannot serve
}

func newView(cfg *config.Config) (*view, error) {
	v := &view{
		cfg: cfg, hash: reportwire.ConfigHash(cfg),
		agents: map[string]config.Agent{}, members: map[string]bool{},
		tokens: map[[32]byte]string{},
	}
	for _, a := range cfg.Agents {
		v.agents[a.ID] = a
	}
	for _, d := range cfg.Databases {
		for _, m := range d.Members {
			v.members[m.Name] = true
		}
	}
	for i, a := range cfg.Agents {
		if a.TokenFile == "" {
			continue
		}
		tok, err := config.ReadToken(fmt.Sprintf("agents[%d].token_file", i), a.TokenFile)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256([]byte(tok))
		if other, dup := v.tokens[sum]; dup {
			return nil, fmt.Errorf("agents[%d].token_file: agent %q has the same token as %q; each agent needs its own", i, a.ID, other)
		}
		v.tokens[sum] = a.ID
	}
	sec := cfg.Security
	switch {
	case sec.TLS.Enabled():
		tc, pool, err := serverTLS(sec.TLS, len(v.tokens) > 0)
		if err != nil {
			return nil, err
		}
		v.mode, v.tls, v.caPool = "tls", tc, pool
	case sec.Insecure:
		v.mode = "insecure"
	default:
		return nil, reportwire.ErrNoProtection
	}
	return v, nil
}

// serverTLS is the node's TLS config: serve tls.cert/tls.key; with tls.ca,
// verify client certificates against it (required without agent tokens,
// verified if given otherwise).
func serverTLS(t config.TLS, haveTokens bool) (*tls.Config, *x509.CertPool, error) {
	kp, err := config.LoadKeyPair(t)
	if err != nil {
		return nil, nil, err
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{kp}, NextProtos: []string{"h2"}}
	var pool *x509.CertPool
	switch {
	case t.CA != "":
		if pool, err = config.LoadCA(t.CA); err != nil {
			return nil, nil, err
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
		if haveTokens {
			c.ClientAuth = tls.VerifyClientCertIfGiven
		}
	case !haveTokens:
		return nil, nil, errors.New("security.tls.ca: a node needs ca to verify agent certificates (mTLS), or agents[].token_file")
	}
	return c, pool, nil
}

// principal is who opened a stream.
type principal struct {
	// agent is the authenticated agent id; "" in insecure mode, where
	// reports name their agent unchecked.
	agent  string
	method string // methodToken, methodMTLS or methodInsecure
	remote string
	// token is the SHA-256 of the bearer token (token mode).
	token [32]byte
	// chain is the verified client certificate chain, leaf first (mTLS).
	chain []*x509.Certificate
}

// authenticate establishes who opened the stream under view v: the agent
// whose token was presented (token mode), the agent a verified client
// certificate names (mTLS), or nobody (insecure).
func authenticate(ctx context.Context, v *view) (principal, error) {
	var p principal
	var certAgent string
	if pr, ok := peer.FromContext(ctx); ok {
		if pr.Addr != nil {
			p.remote = pr.Addr.String()
		}
		if ti, ok := pr.AuthInfo.(credentials.TLSInfo); ok {
			if ch := ti.State.VerifiedChains; len(ch) > 0 && len(ch[0]) > 0 {
				p.chain = ch[0]
				certAgent = reportwire.CertIdentity(ch[0][0])
			}
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	var got string
	for _, h := range md.Get("authorization") {
		if t, ok := strings.CutPrefix(h, "Bearer "); ok {
			got = t
		}
	}
	switch {
	// With tokens configured, a stream without one may still authenticate
	// by a verified client certificate (agents without a token_file, when
	// the node has tls.ca).
	case len(v.tokens) > 0 && (got != "" || p.chain == nil):
		if got == "" {
			return p, status.Error(codes.Unauthenticated, "missing bearer token (authorization: Bearer ...)")
		}
		// Looked up by SHA-256: timing can reveal nothing about the
		// token beyond its hash.
		p.token = sha256.Sum256([]byte(got))
		id, ok := v.tokens[p.token]
		if !ok {
			return p, status.Error(codes.Unauthenticated, "invalid bearer token: it is no agent's agents[].token_file")
		}
		p.agent, p.method = id, methodToken
		if p.chain != nil && certAgent != id {
			return p, status.Errorf(codes.PermissionDenied,
				"the bearer token is agent %q's but the client certificate names %q", id, certAgent)
		}
	case v.mode == "tls":
		if p.chain == nil {
			return p, status.Error(codes.Unauthenticated, "a client certificate issued by security.tls.ca is required")
		}
		p.agent, p.method = certAgent, methodMTLS
		if _, ok := v.agents[certAgent]; !ok {
			return p, status.Errorf(codes.PermissionDenied,
				"client certificate names %q (URI SAN aagtm-agent://<id>, else CN), which is not a configured agent id", certAgent)
		}
	default:
		p.method = methodInsecure
	}
	return p, nil
}

// stillValid checks an open stream's principal against a new view, after
// a config reload: the token must still map to the same agent, the agent
// must still be configured, and the certificate must still verify against
// the CA. It returns the status error that ends the stream, or nil.
func stillValid(p principal, v *view) error {
	switch p.method {
	case methodToken:
		if id, ok := v.tokens[p.token]; !ok || id != p.agent {
			return status.Errorf(codes.Unauthenticated, "the bearer token of agent %q is no longer valid (rotated or removed by a config reload)", p.agent)
		}
	case methodMTLS:
		if _, ok := v.agents[p.agent]; !ok {
			return status.Errorf(codes.PermissionDenied, "agent %q is no longer in the config (agents)", p.agent)
		}
		if v.caPool == nil || len(p.chain) == 0 {
			return status.Errorf(codes.Unauthenticated, "client certificates are no longer accepted (security.tls.ca removed)")
		}
		inter := x509.NewCertPool()
		for _, c := range p.chain[1:] {
			inter.AddCert(c)
		}
		if _, err := p.chain[0].Verify(x509.VerifyOptions{
			Roots: v.caPool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}); err != nil {
			return status.Errorf(codes.Unauthenticated, "the client certificate of agent %q no longer verifies against security.tls.ca: %v", p.agent, err)
		}
	case methodInsecure:
		if v.mode != "insecure" || len(v.tokens) > 0 {
			return status.Error(codes.Unauthenticated, "unauthenticated streams are no longer accepted")
		}
	}
	if p.method != methodInsecure {
		if _, ok := v.agents[p.agent]; !ok {
			return status.Errorf(codes.PermissionDenied, "agent %q is no longer in the config (agents)", p.agent)
		}
	}
	return nil
}
