package admin

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aagtm/aagtm/config"
)

// DefaultTimeout bounds each node's call in FanOut when no timeout is
// given.
const DefaultTimeout = 3 * time.Second

// Client calls one node's admin API.
type Client struct {
	node  string
	base  string
	token string
	hc    *http.Client
}

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithRootCAs verifies the node's HTTPS certificate with pool instead of
// the system roots.
func WithRootCAs(pool *x509.CertPool) ClientOption {
	return func(c *Client) {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		c.hc = &http.Client{Transport: tr}
	}
}

// NewClient returns a client of the admin API of node at addr: a base URL
// (http://10.0.0.5:8053, https://ns1.example.net:8053) or host:port, which
// means http. token is sent as the bearer token with mutating calls only;
// GETs do not need it. Calls are bounded by their contexts.
func NewClient(node, addr, token string, opts ...ClientOption) (*Client, error) {
	base := strings.TrimSpace(addr)
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("admin address %q of node %s: use host:port, http://host:port or https://host:port", addr, node)
	}
	c := &Client{node: node, base: strings.TrimRight(u.String(), "/"), token: token, hc: http.DefaultClient}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// NodeClient returns a client of node n at AdminURL(n), verifying its
// certificate with n.AdminTLS.CA when that is set.
func NodeClient(n config.Node, token string) (*Client, error) {
	var opts []ClientOption
	if n.AdminTLS.CA != "" {
		pool, err := config.LoadCAFile("nodes["+n.Name+"].admin_tls.ca", n.AdminTLS.CA)
		if err != nil {
			return nil, err
		}
		opts = append(opts, WithRootCAs(pool))
	}
	return NewClient(n.Name, AdminURL(n), token, opts...)
}

// AdminURL returns the URL at which an operator reaches node n's admin API:
// its admin address, with an unspecified host (":8053", "0.0.0.0:8053")
// replaced by the host of its report address, which agents reach too;
// https when the node has admin_tls.
func AdminURL(n config.Node) string {
	addr := n.Admin
	if addr == "" {
		addr = config.DefaultAdminListen
	}
	if strings.Contains(addr, "://") {
		return strings.TrimRight(addr, "/")
	}
	scheme := "http://"
	if n.AdminTLS.Enabled() {
		scheme = "https://"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return scheme + addr
	}
	if unspecified(host) {
		host = "127.0.0.1"
		if rh, _, err := net.SplitHostPort(n.Report); err == nil && !unspecified(rh) {
			host = rh
		}
	}
	return scheme + net.JoinHostPort(host, port)
}

// TokenInClear reports whether a bearer token sent to the admin URL u
// would cross a network in plain text: http to a host that is not
// loopback (an address or localhost).
func TokenInClear(u string) bool {
	p, err := url.Parse(u)
	if err != nil || p.Scheme != "http" {
		return false
	}
	host := p.Hostname()
	if strings.EqualFold(host, "localhost") {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err != nil || !ip.IsLoopback()
}

func unspecified(host string) bool {
	if host == "" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsUnspecified()
}

// Node returns the name of the node the client calls.
func (c *Client) Node() string { return c.node }

// URL returns the base URL the client calls.
func (c *Client) URL() string { return c.base }

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var st Status
	if err := c.do(ctx, http.MethodGet, "/v1/status", nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Drain drains member on the node (and, through it, on every node).
func (c *Client) Drain(ctx context.Context, member string, ch Change) (*Result, error) {
	return c.Mutate(ctx, http.MethodPost, "/v1/members/"+url.PathEscape(member)+"/drain", changeRequest("", ch))
}

// Undrain clears member's drain.
func (c *Client) Undrain(ctx context.Context, member string, ch Change) (*Result, error) {
	return c.Mutate(ctx, http.MethodPost, "/v1/members/"+url.PathEscape(member)+"/undrain", changeRequest("", ch))
}

// Force makes every client of db get member.
func (c *Client) Force(ctx context.Context, db, member string, ch Change) (*Result, error) {
	return c.Mutate(ctx, http.MethodPost, "/v1/databases/"+url.PathEscape(db)+"/force", changeRequest(member, ch))
}

// Unforce returns db to health-based answers.
func (c *Client) Unforce(ctx context.Context, db string, ch Change) (*Result, error) {
	return c.Mutate(ctx, http.MethodDelete, "/v1/databases/"+url.PathEscape(db)+"/force", changeRequest("", ch))
}

// changeRequest is the body of an override call (ch.Who is the server's
// to set).
func changeRequest(member string, ch Change) ChangeRequest {
	req := ChangeRequest{Member: member, Reason: ch.Reason}
	if ch.For > 0 {
		req.For = ch.For.String()
	}
	return req
}

// AckCorruptState acknowledges the node's report of a corrupt state file
// (a no-op on a node that has none).
func (c *Client) AckCorruptState(ctx context.Context) error {
	_, err := c.Mutate(ctx, http.MethodPost, "/v1/state/ack-corrupt", nil)
	return err
}

// Ready reports whether the node's /readyz answers 200.
func (c *Client) Ready(ctx context.Context) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/readyz", nil)
	if err != nil {
		return false, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	return resp.StatusCode == http.StatusOK, nil
}

// Mutate sends a mutating call (method and path as in the API, body
// encoded as JSON when not nil) and returns the node's Result: its
// overrides after the change.
func (c *Client) Mutate(ctx context.Context, method, path string, body any) (*Result, error) {
	var res Result
	if err := c.do(ctx, method, path, body, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// do sends one call and decodes a 2xx JSON reply into out, or returns an
// *APIError for any other status.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if method != http.MethodGet {
		// Mutating calls: the server refuses any other Content-Type (CSRF)
		// and needs the token; GETs never carry it.
		req.Header.Set("Content-Type", "application/json")
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read reply: %w", method, req.URL, err)
	}
	if resp.StatusCode/100 != 2 {
		apiErr := &APIError{StatusCode: resp.StatusCode}
		var eb errorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error != "" {
			apiErr.Code, apiErr.Message = eb.Code, eb.Error
		} else {
			apiErr.Message = strings.TrimSpace(string(data))
		}
		return apiErr
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode reply: %w", method, req.URL, err)
	}
	return nil
}

// APIError is a non-2xx reply of the admin API. errors.Is matches it
// against ErrNotFound, ErrBadRequest, ErrUnauthorized, ErrForbidden and
// ErrUnsupportedMediaType.
type APIError struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Code is the machine-readable error code (not_found, bad_request,
	// unauthorized, forbidden, unsupported_media_type, internal).
	Code string
	// Message is the server's explanation.
	Message string
}

// Error implements error.
func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	return fmt.Sprintf("%s (HTTP %d)", msg, e.StatusCode)
}

// Unwrap returns the sentinel error matching the status.
func (e *APIError) Unwrap() error {
	switch e.StatusCode {
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusBadRequest:
		return ErrBadRequest
	case http.StatusUnauthorized:
		return ErrUnauthorized
	case http.StatusForbidden:
		return ErrForbidden
	case http.StatusUnsupportedMediaType:
		return ErrUnsupportedMediaType
	}
	return nil
}

// NodeResult is the outcome of one node's call in FanOut.
type NodeResult struct {
	// Node is the node's name; URL the admin URL called.
	Node string
	URL  string
	// Err is the call's error; nil on success.
	Err error
	// Elapsed is how long the call took.
	Elapsed time.Duration
}

// FanOut calls fn with a Client for every node, concurrently, each call
// bounded by timeout (DefaultTimeout when zero or less), and returns one
// result per node in the order of nodes. i is the node's index in nodes, so
// fn can store values in a slice of its own without locking. A node that is
// down, refuses or times out is reported in its result, never fatal to the
// others. Clients send token with mutating calls, over HTTPS to nodes with
// admin_tls (verified with its ca).
func FanOut(ctx context.Context, nodes []config.Node, token string, timeout time.Duration, fn func(ctx context.Context, i int, c *Client) error) []NodeResult {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	results := make([]NodeResult, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		results[i] = NodeResult{Node: n.Name, URL: AdminURL(n)}
		c, err := NodeClient(n, token)
		if err != nil {
			results[i].Err = err
			continue
		}
		wg.Add(1)
		go func(i int, r *NodeResult) {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			start := time.Now()
			r.Err = fn(cctx, i, c)
			r.Elapsed = time.Since(start)
			if r.Err != nil && errors.Is(cctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
				r.Err = fmt.Errorf("no reply within %s: %w", timeout, r.Err)
			}
		}(i, &results[i])
	}
	wg.Wait()
	return results
}
