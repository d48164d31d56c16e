package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/aagtm/aagtm/config"
	"github.com/aagtm/aagtm/policy"
)

// Errors a Backend returns (wrapped with %w) so the server can pick the
// HTTP status, and that Client methods return (wrapped in *APIError) so
// callers can test them with errors.Is.
var (
	// ErrNotFound: the member or database is not in the config (404).
	ErrNotFound = errors.New("not found")
	// ErrBadRequest: the request is malformed or contradicts the config,
	// e.g. forcing a database to another database's member (400).
	ErrBadRequest = errors.New("bad request")
	// ErrUnauthorized: a mutating call without the right bearer token (401).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: mutations are disabled because the node has no admin
	// token and is not insecure, or insecure but the request arrived off
	// loopback, or the Host header does not name this node (403).
	ErrForbidden = errors.New("forbidden")
	// ErrUnsupportedMediaType: a mutating call without Content-Type:
	// application/json (415).
	ErrUnsupportedMediaType = errors.New("unsupported media type")
)

// Backend is what the admin API needs from a node. Methods are called from
// HTTP handlers concurrently and must be safe for that.
//
// Drain, Undrain, Force and Unforce return an error wrapping ErrNotFound
// for an unknown member or database and ErrBadRequest for input that the
// config contradicts; any other error is a 500.
type Backend interface {
	// Snapshot returns the current decision, nil before the first one.
	Snapshot() *policy.Snapshot
	// Config returns the config in force.
	Config() *config.Config
	// Overrides returns a copy of the operator overrides in force.
	Overrides() policy.Overrides
	// Drain and Undrain set and clear a member's drain.
	Drain(member string, c Change) error
	Undrain(member string, c Change) error
	// Force answers member to every client of db; Unforce clears it.
	Force(db, member string, c Change) error
	Unforce(db string, c Change) error
	// Ready reports whether the node serves DNS.
	Ready() bool
}

// Result is the JSON reply of a successful mutating call.
type Result struct {
	// Node is the node that applied the change.
	Node string `json:"node"`
	// Action is drain, undrain, force or unforce.
	Action string `json:"action"`
	// Overrides are the node's overrides after the change.
	Overrides OverrideStatus `json:"overrides"`
}

// Change says who asks for an override change, why, and for how long.
type Change struct {
	// Who is the caller as the server authenticated it: "admin-token"
	// (the bearer token of security.admin_token_file) or "local" (no
	// token, on loopback, with security.insecure). Set by the server.
	Who string
	// Reason is the operator's explanation, free text.
	Reason string
	// For, when positive, ends a drain or force that long after the node
	// takes it, on every node at the same moment. Zero: until removed.
	For time.Duration
}

// ChangeRequest is the JSON body of the override calls: POST
// /v1/members/{name}/drain and /undrain, POST and DELETE
// /v1/databases/{db}/force. Every field is optional except Member for a
// force; an empty body is an empty request.
type ChangeRequest struct {
	// Member is, for a force, the member every client of the database
	// gets.
	Member string `json:"member,omitempty"`
	// Reason is the operator's explanation, e.g. "maintenance".
	Reason string `json:"reason,omitempty"`
	// For is how long a drain or force lasts, as a Go duration ("30m");
	// empty: until removed.
	For string `json:"for,omitempty"`
}

// maxReason bounds the length of a change's reason.
const maxReason = 500

// errorBody is the JSON reply of a failed call.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// The error codes of errorBody, one per sentinel.
const (
	codeNotFound     = "not_found"
	codeBadRequest   = "bad_request"
	codeUnauthorized = "unauthorized"
	codeForbidden    = "forbidden"
	codeMediaType    = "unsupported_media_type"
	codeInternal     = "internal"
)

// maxBody bounds request bodies.
const maxBody = 64 << 10

// shutdownTimeout bounds how long Serve waits for in-flight requests.
const shutdownTimeout = 5 * time.Second

// Server is the admin HTTP API of one node.
type Server struct {
	b        Backend
	node     string
	auth     atomic.Pointer[auth]
	logger   hclog.Logger
	handler  http.Handler
	shutting atomic.Bool
	refusals refusalLog
}

// NewServer returns the admin API of node, served from b.
//
// Mutating calls need "Content-Type: application/json", a Host header
// naming this node (see checkHost) and "Authorization: Bearer <token>".
// With token "" they are refused (403), unless insecure is true, when they
// are open to anyone who reaches the listener on a loopback address (tests,
// labs). GETs are always open.
// reg is exposed on /metrics; nil serves no /metrics. logger may be nil.
func NewServer(b Backend, node string, token string, insecure bool, reg *prometheus.Registry, logger hclog.Logger) *Server {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	s := &Server{
		b:      b,
		node:   node,
		logger: logger.Named("admin"),
	}
	s.SetAuth(token, insecure)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /v1/status/stream", s.statusStream)
	mux.Handle("GET /{$}", pageHandler())
	mux.Handle("GET /page/", pageHandler())
	mux.HandleFunc("POST /v1/members/{name}/drain", s.override("drain", func(r *http.Request, req ChangeRequest, c Change) error {
		return s.b.Drain(r.PathValue("name"), c)
	}))
	mux.HandleFunc("POST /v1/members/{name}/undrain", s.override("undrain", func(r *http.Request, req ChangeRequest, c Change) error {
		return s.b.Undrain(r.PathValue("name"), c)
	}))
	mux.HandleFunc("POST /v1/databases/{db}/force", s.override("force", func(r *http.Request, req ChangeRequest, c Change) error {
		if req.Member == "" {
			return fmt.Errorf("%w: member is missing: send {\"member\": \"NAME\"}", ErrBadRequest)
		}
		return s.b.Force(r.PathValue("db"), req.Member, c)
	}))
	mux.HandleFunc("DELETE /v1/databases/{db}/force", s.override("unforce", func(r *http.Request, req ChangeRequest, c Change) error {
		return s.b.Unforce(r.PathValue("db"), c)
	}))
	mux.HandleFunc("POST /v1/state/ack-corrupt", s.mutating("ack-state", func(r *http.Request, _ string) error { return s.ackState(r) }))
	mux.HandleFunc("POST /v1/overrides/exchange", s.exchange)
	if reg != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
			Registry:          reg,
			ErrorLog:          s.logger.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Warn}),
			EnableOpenMetrics: true,
		}))
	}
	s.handler = mux
	return s
}

// Handler returns the API's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// SetShuttingDown makes /readyz answer 503 from now on, so load balancers
// and orchestrators stop sending work before the listeners close.
func (s *Server) SetShuttingDown() { s.shutting.Store(true) }

// Serve serves the API on ln until ctx is cancelled, then marks the server
// shutting down and closes gracefully, waiting up to 5s for in-flight
// requests. It returns nil after a graceful shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          s.logger.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug}),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	s.SetShuttingDown()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc // http.ErrServerClosed once Shutdown has begun
	if err != nil {
		return fmt.Errorf("admin: shutdown: %w", err)
	}
	return nil
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok\n")
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	switch {
	case s.shutting.Load():
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "shutting down\n")
	case !s.b.Ready():
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "not ready\n")
	default:
		io.WriteString(w, "ready\n")
	}
}

// ready is the readiness /readyz reports.
func (s *Server) ready() bool { return !s.shutting.Load() && s.b.Ready() }

// Ready reports whether /readyz answers 200 now (aagtm_node_ready).
func (s *Server) Ready() bool { return s.ready() }

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.statusDoc())
}

// statusDoc is the document GET /v1/status serves and the status stream
// pushes.
func (s *Server) statusDoc() *Status {
	st := NewStatus(s.node, s.b.Snapshot(), s.b.Config(), s.b.Overrides())
	st.Overrides = s.overrideStatus()
	if ro, ok := s.b.(ReplicatedOverrides); ok {
		st.Peers = peerStatuses(ro.OverridePeers())
	}
	st.Ready = s.ready()
	if al, ok := s.b.(AgentLister); ok {
		st.Agents = append(st.Agents, al.Agents()...)
	}
	if sk, ok := s.b.(StateKeeper); ok {
		st.State = sk.StateStatus()
	}
	return st
}

// mutating wraps a state-changing handler: it checks the caller (admit),
// runs apply with the caller's name and answers the resulting overrides or
// the mapped error.
func (s *Server) mutating(action string, apply func(r *http.Request, who string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		who, ok := s.admit(w, r, action)
		if !ok {
			return
		}
		if err := apply(r, who); err != nil {
			s.writeError(w, err)
			return
		}
		s.logger.Debug("admin call applied", "action", action, "path", r.URL.Path, "remote", r.RemoteAddr)
		writeJSON(w, http.StatusOK, Result{Node: s.node, Action: action, Overrides: s.overrideStatus()})
	}
}

// admit checks a mutating call's Host header, Content-Type and bearer
// token, and returns who the caller is. A refusal is answered, and logged
// (rate-limited: a peer or script retrying with a wrong token does not
// flood the log).
func (s *Server) admit(w http.ResponseWriter, r *http.Request, action string) (string, bool) {
	err := checkHost(r, s.b.Config())
	if err == nil {
		err = checkContentType(r)
	}
	who := ""
	if err == nil {
		who, err = s.authorize(r)
	}
	if err != nil {
		if n, log := s.refusals.allow(action, time.Now()); log {
			s.logger.Warn("admin call refused", "action", action, "remote", r.RemoteAddr, "error", err, "refusals_not_logged", n)
		}
		s.writeError(w, err)
		return "", false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	return who, true
}

// override wraps an override call: after admit, it decodes the optional
// ChangeRequest body and hands apply the Change it describes.
func (s *Server) override(action string, apply func(*http.Request, ChangeRequest, Change) error) http.HandlerFunc {
	return s.mutating(action, func(r *http.Request, who string) error {
		req, err := decodeChange(r.Body)
		if err != nil {
			return err
		}
		c := Change{Who: who, Reason: req.Reason}
		if req.For != "" {
			if action == "undrain" || action == "unforce" {
				return fmt.Errorf("%w: for: a removal does not expire; send for only with drain and force", ErrBadRequest)
			}
			d, err := time.ParseDuration(req.For)
			if err != nil || d <= 0 {
				return fmt.Errorf("%w: for %q: want a positive duration such as \"30m\" or \"2h\"", ErrBadRequest, req.For)
			}
			c.For = d
		}
		return apply(r, req, c)
	})
}

// decodeChange reads a ChangeRequest; an empty body is an empty request.
func decodeChange(body io.Reader) (ChangeRequest, error) {
	var req ChangeRequest
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		return req, fmt.Errorf("%w: body must be JSON like {\"reason\": \"maintenance\", \"for\": \"30m\"} (and \"member\" for a force): %v", ErrBadRequest, err)
	}
	if dec.More() {
		return req, fmt.Errorf("%w: body must be one JSON object", ErrBadRequest)
	}
	req.Member, req.Reason = strings.TrimSpace(req.Member), strings.TrimSpace(req.Reason)
	if len(req.Reason) > maxReason {
		return req, fmt.Errorf("%w: reason is %d bytes: keep it under %d", ErrBadRequest, len(req.Reason), maxReason)
	}
	return req, nil
}

// auth is what mutating calls are checked against.
type auth struct {
	tokenHash [sha256.Size]byte
	hasToken  bool
	insecure  bool
}

// SetAuth replaces the admin token and the insecure switch (a config
// reload), so that a rotated or revoked token takes effect at once.
func (s *Server) SetAuth(token string, insecure bool) {
	a := &auth{hasToken: token != "", insecure: insecure}
	if a.hasToken {
		a.tokenHash = sha256.Sum256([]byte(token))
	}
	s.auth.Store(a)
}

// The callers authorize names: who took a change.
const (
	// WhoToken: a caller with the admin token.
	WhoToken = "admin-token"
	// WhoLocal: an unauthenticated caller on loopback (security.insecure).
	WhoLocal = "local"
)

// authorize checks the bearer token in constant time and returns who the
// caller is (WhoToken or WhoLocal). Both sides are hashed first so that
// the comparison does not leak the token's length either.
func (s *Server) authorize(r *http.Request) (string, error) {
	a := s.auth.Load()
	if !a.hasToken {
		if !a.insecure {
			return "", fmt.Errorf("%w: this node has no admin token: set security.admin_token_file (or security.insecure: true in a lab, on a loopback admin address)", ErrForbidden)
		}
		if ip := localIP(r); !ip.IsLoopback() {
			return "", fmt.Errorf("%w: security.insecure opens mutations only on loopback and this call arrived on %s: set security.admin_token_file", ErrForbidden, ip)
		}
		return WhoLocal, nil
	}
	const prefix = "Bearer "
	h := r.Header.Get("Authorization")
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", fmt.Errorf("%w: send Authorization: Bearer <admin token>", ErrUnauthorized)
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(h[len(prefix):])))
	if subtle.ConstantTimeCompare(got[:], a.tokenHash[:]) != 1 {
		return "", fmt.Errorf("%w: wrong admin token", ErrUnauthorized)
	}
	return WhoToken, nil
}

// writeError maps err to its HTTP status: the one place that decides it.
func (s *Server) writeError(w http.ResponseWriter, err error) {
	code, status := codeInternal, http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotFound):
		code, status = codeNotFound, http.StatusNotFound
	case errors.Is(err, ErrBadRequest):
		code, status = codeBadRequest, http.StatusBadRequest
	case errors.Is(err, ErrUnauthorized):
		code, status = codeUnauthorized, http.StatusUnauthorized
		w.Header().Set("WWW-Authenticate", `Bearer realm="aagtm"`)
	case errors.Is(err, ErrForbidden):
		code, status = codeForbidden, http.StatusForbidden
	case errors.Is(err, ErrUnsupportedMediaType):
		code, status = codeMediaType, http.StatusUnsupportedMediaType
	default:
		s.logger.Error("admin call failed", "error", err)
	}
	writeJSON(w, status, errorBody{Error: err.Error(), Code: code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the status is sent; a broken connection is the client's
}
