package probes

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/aagtm/aagtm/config"
)

// Outcome classifies a check result. It travels in the report
// (CheckResult.outcome) so that nodes and operators see why a check failed,
// not only that it did.
type Outcome string

// The outcomes.
const (
	// OutcomePass: the check passed.
	OutcomePass Outcome = "pass"
	// OutcomeTimeout: no answer within the probe timeout (hung server,
	// packet loss, overload).
	OutcomeTimeout Outcome = "timeout"
	// OutcomeUnreachable: no connection (refused, reset, DNS, TLS
	// handshake).
	OutcomeUnreachable Outcome = "unreachable"
	// OutcomeAuth: the server refused our credentials (NOAUTH, WRONGPASS,
	// NOPERM) or, for rest, HTTP 401/403.
	OutcomeAuth Outcome = "auth"
	// OutcomeLoading: the server is loading its dataset (a LOADING reply)
	// and cannot serve reads.
	OutcomeLoading Outcome = "loading"
	// OutcomeWrongReply: the server answered, but not what the check
	// expected.
	OutcomeWrongReply Outcome = "wrong_reply"
	// OutcomeUnavailable: the rest check's endpoint said the database is
	// unavailable (HTTP 503 and its error_code).
	OutcomeUnavailable Outcome = "unavailable"
	// OutcomeError: any other error reply.
	OutcomeError Outcome = "error"
	// OutcomeNotMeasured: the agent itself could not run the check in
	// time (its own overload, its dial budget). It says nothing about the
	// member: nodes never count it as a failed check.
	OutcomeNotMeasured Outcome = "not_measured"
)

// result is the typed outcome of one check of one member.
type result struct {
	check    config.Check
	outcome  Outcome
	err      string
	duration time.Duration
}

func (r result) ok() bool { return r.outcome == OutcomePass }

// pass and fail build results; run fills in the duration.
func pass(c config.Check) result { return result{check: c, outcome: OutcomePass} }

func fail(c config.Check, o Outcome, format string, args ...any) result {
	return result{check: c, outcome: o, err: fmt.Sprintf(format, args...)}
}

// failErr classifies err and builds a failed result whose text names the
// operation.
func failErr(c config.Check, op string, err error) result {
	return result{check: c, outcome: classify(err), err: op + ": " + err.Error()}
}

// classify maps a go-redis (or network) error to an outcome. A LOADING reply
// is a failure: the member cannot serve reads while it loads.
func classify(err error) Outcome {
	var rerr redis.Error
	var nerr net.Error
	switch {
	case err == nil:
		return OutcomePass
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, redis.ErrPoolTimeout):
		return OutcomeTimeout
	case errors.As(err, &rerr):
		msg := strings.TrimPrefix(rerr.Error(), "ERR ")
		switch {
		case strings.HasPrefix(msg, "LOADING"):
			return OutcomeLoading
		case strings.HasPrefix(msg, "NOAUTH"), strings.HasPrefix(msg, "WRONGPASS"),
			strings.HasPrefix(msg, "NOPERM"), strings.HasPrefix(msg, "invalid password"):
			return OutcomeAuth
		}
		return OutcomeError
	case errors.As(err, &nerr) && nerr.Timeout():
		return OutcomeTimeout
	default:
		return OutcomeUnreachable
	}
}

// Client settings that are not configurable: a probe must fail fast and
// honestly, so no retries and one dial attempt per probe.
const (
	// poolSize is small: checks of one member run one after another; the
	// extra connections absorb a check still finishing after a timeout.
	poolSize = 3
	// roundSlack is how long past the timeout a round waits for a member
	// before reporting it as timed out anyway.
	roundSlack = 50 * time.Millisecond
)

// target is one member as the agent probes it: its config and its clients.
type target struct {
	member config.Member
	// local is true when the member is in the agent's region: the agent
	// writes its heartbeat there.
	local bool
	opts  *redis.Options
	http  *http.Client

	// busy is set while a probe of the member runs; a round finding it set
	// (the previous probe is still stuck) reports a timeout at once instead
	// of piling up goroutines.
	busy atomic.Bool

	mu     sync.Mutex
	client *redis.Client
	nodes  map[string]*redis.Client // OSS Cluster nodes by host:port
}

// newTarget parses the member's URL and prepares (but does not dial) its
// client. Timeouts come from p.Timeout whatever the URL says.
func newTarget(m config.Member, p config.Probes, agentID, region string) (*target, error) {
	opts, err := redis.ParseURL(m.Redis)
	if err != nil {
		return nil, fmt.Errorf("member %s: parse redis URL: %w", m.Name, err)
	}
	timeout := p.Timeout
	opts.DialTimeout = timeout
	opts.ReadTimeout = timeout
	opts.WriteTimeout = timeout
	opts.PoolTimeout = timeout
	// Context deadlines bound every call, so a member's round ends at its
	// deadline whatever the socket does.
	opts.ContextTimeoutEnabled = true
	opts.MaxRetries = -1   // -1 disables retries (0 means the default 3)
	opts.DialerRetries = 1 // one dial per attempt (default 5, 100ms apart)
	opts.PoolSize = poolSize
	opts.MinIdleConns = 0
	opts.DisableIdentity = true // no CLIENT SETINFO round trips on connect
	opts.ClientName = "aagtm-probe-" + agentID
	if opts.Protocol == 0 {
		opts.Protocol = 2
	}
	opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}

	tr := http.DefaultTransport.(*http.Transport).Clone()
	if m.REST.InsecureSkipVerify {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // operator's explicit choice
	}
	return &target{
		member: m,
		local:  m.Region == region,
		opts:   opts,
		http:   &http.Client{Transport: tr, Timeout: timeout},
	}, nil
}

// redis returns the member's client, creating it when needed.
func (t *target) redis() *redis.Client {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.client == nil {
		t.client = redis.NewClient(t.opts)
	}
	return t.client
}

// node returns a client for one OSS Cluster node of the member, with the
// member's credentials and TLS settings. An empty host means the member's
// own host (CLUSTER SLOTS may announce "" or "?").
func (t *target) node(addr string) *redis.Client {
	host, port, err := net.SplitHostPort(addr)
	if err == nil && (host == "" || host == "?") {
		mh, _, _ := net.SplitHostPort(t.opts.Addr)
		addr = net.JoinHostPort(mh, port)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if addr == t.opts.Addr {
		if t.client == nil {
			t.client = redis.NewClient(t.opts)
		}
		return t.client
	}
	if c, ok := t.nodes[addr]; ok {
		return c
	}
	o := *t.opts
	o.Addr = addr
	if o.TLSConfig != nil {
		o.TLSConfig = o.TLSConfig.Clone() // keeps ServerName: the member's name
	}
	c := redis.NewClient(&o)
	if t.nodes == nil {
		t.nodes = map[string]*redis.Client{}
	}
	t.nodes[addr] = c
	return c
}

// do runs one single-key command, following one MOVED or ASK redirect (an
// OSS Cluster member answers MOVED for keys of other shards).
func (t *target) do(ctx context.Context, args ...any) *redis.Cmd {
	cmd := t.redis().Do(ctx, args...)
	if addr, ask, ok := redirect(cmd.Err()); ok {
		c := t.node(addr)
		if ask {
			pipe := c.Pipeline()
			pipe.Do(ctx, "ASKING")
			cmd = pipe.Do(ctx, args...)
			_, _ = pipe.Exec(ctx)
			return cmd
		}
		cmd = c.Do(ctx, args...)
	}
	return cmd
}

// redirect parses "MOVED <slot> <addr>" and "ASK <slot> <addr>" replies.
func redirect(err error) (addr string, ask, ok bool) {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return "", false, false
	}
	f := strings.Fields(rerr.Error())
	if len(f) != 3 || (f[0] != "MOVED" && f[0] != "ASK") {
		return "", false, false
	}
	return f[2], f[0] == "ASK", true
}

// reset closes every client, so the next probe dials afresh. The agent
// calls it after a connection-level failure: go-redis otherwise stops
// dialing a host after PoolSize failed dials and retries only once a
// second, which would delay noticing the member's recovery.
func (t *target) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.client != nil {
		_ = t.client.Close()
		t.client = nil
	}
	for addr, c := range t.nodes {
		_ = c.Close()
		delete(t.nodes, addr)
	}
}

// close releases the target's clients and idle HTTP connections.
func (t *target) close() {
	t.reset()
	t.http.CloseIdleConnections()
}
