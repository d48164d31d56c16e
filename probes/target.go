package probes

import (
	"context"
	"crypto/sha256"
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
	// redial is set when the failure came from opening a connection (a
	// failed or refused dial, no dial slot) or a broken one: the member's
	// client is then replaced, since go-redis stops dialing after a few
	// failed dials. A reply timeout on an open connection needs no new
	// client (go-redis drops that connection itself).
	redial bool
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
	o := classify(err)
	var oe *net.OpError
	redial := o == OutcomeUnreachable || errors.Is(err, errDialBudget) || errors.Is(err, errNoDialSlot) ||
		(errors.As(err, &oe) && oe.Op == "dial")
	return result{check: c, outcome: o, err: op + ": " + err.Error(), redial: redial}
}

// classify maps a go-redis (or network) error to an outcome. A LOADING reply
// is a failure: the member cannot serve reads while it loads.
func classify(err error) Outcome {
	var rerr redis.Error
	var nerr net.Error
	switch {
	case err == nil:
		return OutcomePass
	case errors.Is(err, errDialBudget):
		return OutcomeNotMeasured
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
	// extra connections absorb a check still finishing after a timeout,
	// and members sharing an endpoint whose probes overlap in time.
	poolSize = 3
	// roundSlack is how long past the last probe's deadline a round waits
	// before reporting what is still unfinished.
	roundSlack = 50 * time.Millisecond
	// Per-connection buffers. go-redis defaults to 32 KiB each way, and a
	// pipeline (echo, keyspace, lag) gets a connection of a separate pool
	// with 128 KiB each way: 64 to 320 KiB per member, most of the 300+ MB
	// that 3,000 members cost. Probe commands and replies are a few dozen
	// bytes; a longer reply (CLUSTER SLOTS) just takes more reads. With
	// these, a member with its own endpoint costs about 9 KiB of heap.
	// (512 and 256 saved 1 KiB a member but made probes time out writing
	// under load, with the race detector: measure before going lower.)
	readBufferSize  = 1 << 10
	writeBufferSize = 512
)

// errDialBudget is the dial error when the agent's dial budget had no slot
// free in time: the agent's own limit, not the member's doing. Checks
// report it as OutcomeNotMeasured.
// errNoDialSlot marks the errors of dials that found no slot of their
// host's share and failed like the host's or the member's last failure.
var errNoDialSlot = errors.New("no dial slot")

var errDialBudget = errors.New("no dial slot in time (agent dial budget): not measured")

// dialBudget bounds how many connections the agent opens at once (TCP and
// TLS handshakes): in all, and per host. Without it, a start with thousands
// of members opens thousands of connections in the same millisecond: the
// servers' accept backlogs overflow, the agent's CPU goes to handshakes,
// and every member times out at once. The per-host share keeps one hung
// host, whose dials each hold a slot for the whole dial timeout, from
// taking the budget of every other host.
type dialBudget struct {
	slots   chan struct{}
	perHost int

	mu    sync.Mutex
	hosts map[string]*hostDials
}

// hostDials is one host's share of the budget and how its last dial ended.
type hostDials struct {
	slots chan struct{}
	mu    sync.Mutex
	last  error // nil when the last completed dial succeeded
}

func newDialBudget(n, perHost int) *dialBudget {
	return &dialBudget{slots: make(chan struct{}, n), perHost: perHost, hosts: map[string]*hostDials{}}
}

func (b *dialBudget) host(addr string) *hostDials {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		h = addr
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	hd := b.hosts[h]
	if hd == nil {
		hd = &hostDials{slots: make(chan struct{}, b.perHost)}
		b.hosts[h] = hd
	}
	return hd
}

// busy is the error of a dial of e that found no slot of its host's share
// in time. When the host's last dial failed, the host is not completing
// connections (hung, black-holed, refusing): the dial fails like that one.
// When e's own last probe failed at the connection level (the connection
// it now replaces timed out or broke), the member has not answered since:
// the dial fails like that probe. Either is the member's doing. Otherwise
// the host is merely busy with our other dials: not measured.
func (e *endpoint) busy(hd *hostDials, host string) error {
	hd.mu.Lock()
	last := hd.last
	hd.mu.Unlock()
	if last != nil {
		return fmt.Errorf("dial: %w for %s (all taken by pending dials) and its last dial failed: %w", errNoDialSlot, host, last)
	}
	e.mu.Lock()
	o, text := e.failed, e.failedText
	e.mu.Unlock()
	switch o {
	case OutcomeTimeout:
		return fmt.Errorf("dial: %w for %s (all taken by pending dials), and the last probe timed out (%s): %w", errNoDialSlot, host, text, os.ErrDeadlineExceeded)
	case OutcomeUnreachable:
		return fmt.Errorf("dial: %w for %s (all taken by pending dials), and the last probe found it unreachable (%s)", errNoDialSlot, host, text)
	}
	return errDialBudget
}

// failing reports whether the host's last completed dial failed.
func (hd *hostDials) failing() bool {
	hd.mu.Lock()
	defer hd.mu.Unlock()
	return hd.last != nil
}

func (hd *hostDials) done(err error) {
	hd.mu.Lock()
	hd.last = err
	hd.mu.Unlock()
}

// dialer returns a go-redis Dialer that takes a slot of the host's share
// and one of the whole budget (b may be nil: no budget) for the TCP connect
// and the TLS handshake. It waits for the slots at most half the dial
// timeout, so that the probe waiting for the connection learns why before
// its own deadline, and a slot taken late still leaves half the timeout for
// the member to answer. When the host's share is all taken and its last
// dial failed, it does not wait: the host is not completing connections (a
// hung server with a full accept queue holds every slot for a whole dial
// timeout), and thousands of members waiting on timers for a slot that
// frees one dial timeout later would cost the agent its CPU for nothing.
func (b *dialBudget) dialer(ep *endpoint) func(ctx context.Context, network, addr string) (net.Conn, error) {
	timeout, tlsConf := ep.opts.DialTimeout, ep.opts.TLSConfig
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var hd *hostDials
		if b != nil {
			hd = b.host(addr)
			var w *time.Timer // one wait of timeout/2 for both slots, started when needed
			wait := func() <-chan time.Time {
				if w == nil {
					w = time.NewTimer(timeout / 2)
				}
				return w.C
			}
			defer func() {
				if w != nil {
					w.Stop()
				}
			}()
			select {
			case hd.slots <- struct{}{}:
			default:
				if hd.failing() {
					return nil, ep.busy(hd, addr)
				}
				select {
				case hd.slots <- struct{}{}:
				case <-wait():
					return nil, ep.busy(hd, addr)
				case <-ctx.Done():
					return nil, ep.busy(hd, addr)
				}
			}
			defer func() { <-hd.slots }()
			select {
			case b.slots <- struct{}{}:
			default:
				select {
				case b.slots <- struct{}{}:
				case <-wait():
					return nil, errDialBudget
				case <-ctx.Done():
					return nil, errDialBudget
				}
			}
			defer func() { <-b.slots }()
		}
		nd := &net.Dialer{Timeout: timeout, KeepAlive: 5 * time.Minute}
		var c net.Conn
		var err error
		if tlsConf == nil {
			c, err = nd.DialContext(ctx, network, addr)
		} else {
			c, err = (&tls.Dialer{NetDialer: nd, Config: tlsConf}).DialContext(ctx, network, addr)
		}
		if hd != nil {
			hd.done(err)
		}
		return c, err
	}
}

// endpoint is one Redis endpoint as the agent connects to it. Members that
// name the same endpoint (address, user, password, database number,
// protocol and TLS settings: the same key) share one endpoint and so one
// small connection pool.
type endpoint struct {
	key  string
	opts *redis.Options

	mu     sync.Mutex
	client *redis.Client
	nodes  map[string]*redis.Client // OSS Cluster nodes by host:port
	// retired clients were replaced by reset while probes of other
	// members sharing the endpoint may still be using them; they are
	// closed once those probes' deadlines have passed (closeRetired).
	retired []retiredClient
	// failed is the outcome of the last probe through the endpoint when
	// it failed at the connection level (timeout, unreachable), else "";
	// failedText is its error text.
	failed     Outcome
	failedText string
}

type retiredClient struct {
	c  *redis.Client
	at time.Time
}

// endpointKey identifies the connection a member's options describe (and
// the timeout its clients were built with).
func endpointKey(o *redis.Options) string {
	sum := sha256.Sum256([]byte(o.Password))
	k := fmt.Sprintf("%s|%s|%s|%x|%d|%d|%s", o.Network, o.Addr, o.Username, sum[:8], o.DB, o.Protocol, o.DialTimeout)
	if o.TLSConfig != nil {
		k += fmt.Sprintf("|tls:%s:%v", o.TLSConfig.ServerName, o.TLSConfig.InsecureSkipVerify)
	}
	return k
}

// endpoints is the agent's set of endpoints by key.
type endpoints map[string]*endpoint

// get returns the endpoint for opts, adding it when new.
func (es endpoints) get(opts *redis.Options) *endpoint {
	k := endpointKey(opts)
	if e, ok := es[k]; ok {
		return e
	}
	e := &endpoint{key: k, opts: opts}
	if es != nil {
		es[k] = e
	}
	return e
}

// current returns the endpoint's client, creating it when needed.
func (e *endpoint) current() *redis.Client {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.client == nil {
		e.client = redis.NewClient(e.opts)
	}
	return e.client
}

// node returns a client for one OSS Cluster node of the endpoint, with its
// credentials and TLS settings. An empty host means the endpoint's own
// host (CLUSTER SLOTS may announce "" or "?").
func (e *endpoint) node(addr string) *redis.Client {
	host, port, err := net.SplitHostPort(addr)
	if err == nil && (host == "" || host == "?") {
		mh, _, _ := net.SplitHostPort(e.opts.Addr)
		addr = net.JoinHostPort(mh, port)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if addr == e.opts.Addr {
		if e.client == nil {
			e.client = redis.NewClient(e.opts)
		}
		return e.client
	}
	if c, ok := e.nodes[addr]; ok {
		return c
	}
	o := *e.opts
	o.Addr = addr
	if o.TLSConfig != nil {
		o.TLSConfig = o.TLSConfig.Clone() // keeps ServerName: the member's name
	}
	c := redis.NewClient(&o)
	if e.nodes == nil {
		e.nodes = map[string]*redis.Client{}
	}
	e.nodes[addr] = c
	return c
}

// reset replaces the endpoint's clients, if c is still the current one, so
// the next probe dials afresh: go-redis otherwise stops dialing a host after
// PoolSize failed dials and retries only once a second, which would delay
// noticing the member's recovery. The old clients are retired, not closed:
// other members sharing the endpoint may be using them right now.
func (e *endpoint) reset(c *redis.Client) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.client != c || c == nil {
		return // already replaced by another member's probe
	}
	now := time.Now()
	e.retired = append(e.retired, retiredClient{e.client, now})
	e.client = nil
	for addr, n := range e.nodes {
		e.retired = append(e.retired, retiredClient{n, now})
		delete(e.nodes, addr)
	}
}

// probed records the connection-level outcome of a probe through e: o is
// OutcomeTimeout or OutcomeUnreachable with its text, or "" when the
// member answered.
func (e *endpoint) probed(o Outcome, text string) {
	e.mu.Lock()
	e.failed, e.failedText = o, text
	e.mu.Unlock()
}

// closeRetired closes the clients retired before cutoff.
func (e *endpoint) closeRetired(cutoff time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	keep := e.retired[:0]
	for _, r := range e.retired {
		if r.at.Before(cutoff) {
			_ = r.c.Close()
		} else {
			keep = append(keep, r)
		}
	}
	clear(e.retired[len(keep):])
	e.retired = keep
}

// close closes every client of the endpoint.
func (e *endpoint) close() {
	e.mu.Lock()
	c, nodes := e.client, e.nodes
	e.client, e.nodes = nil, nil
	e.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
	for _, n := range nodes {
		_ = n.Close()
	}
	e.closeRetired(time.Now().Add(time.Hour))
}

// target is one member as the agent probes it: its config and its
// endpoint, which it may share with other members.
type target struct {
	member config.Member
	// local is true when the member is in the agent's region: the agent
	// writes its heartbeat there.
	local   bool
	timeout time.Duration
	ep      *endpoint
	// http is nil for members without rest.url.
	http *http.Client

	// busy is set while a probe of the member runs; a round finding it set
	// (the previous probe overran its deadline: the agent is starved)
	// reports the member as not measured instead of piling up goroutines.
	busy atomic.Bool
}

// newTarget parses the member's URL and prepares (but does not dial) its
// client on the endpoint it names, taken from (or added to) eps (nil: an
// endpoint of its own), with dials bounded by budget (nil: unbounded).
// Timeouts come from p.Timeout whatever the URL says.
func newTarget(m config.Member, p config.Probes, agentID, region string, eps endpoints, budget *dialBudget) (*target, error) {
	opts, err := redis.ParseURL(m.Redis)
	if err != nil {
		return nil, fmt.Errorf("member %s: parse redis URL: %w", m.Name, err)
	}
	timeout := p.Timeout
	opts.DialTimeout = timeout
	opts.ReadTimeout = timeout
	opts.WriteTimeout = timeout
	opts.PoolTimeout = timeout
	// Context deadlines bound every call, so a member's probe ends at its
	// deadline whatever the socket does.
	opts.ContextTimeoutEnabled = true
	opts.MaxRetries = -1   // -1 disables retries (0 means the default 3)
	opts.DialerRetries = 1 // one dial per attempt (default 5, 100ms apart)
	opts.PoolSize = poolSize
	opts.MinIdleConns = 0
	opts.PipelinePoolSize = -1 // pipelines share the small pool: no 128 KiB-buffer pool per member
	opts.ReadBufferSize = readBufferSize
	opts.WriteBufferSize = writeBufferSize
	opts.DisableIdentity = true // no CLIENT SETINFO round trips on connect
	opts.ClientName = "aagtm-probe-" + agentID
	if opts.Protocol == 0 {
		opts.Protocol = 2
	}
	opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}

	t := &target{
		member:  m,
		local:   m.Region == region,
		timeout: timeout,
		ep:      eps.get(opts),
	}
	if t.ep.opts == opts { // a new endpoint
		opts.Dialer = budget.dialer(t.ep)
	}
	if m.REST.URL != "" {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if m.REST.InsecureSkipVerify {
			tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // operator's explicit choice
		}
		t.http = &http.Client{Transport: tr, Timeout: timeout}
	}
	return t, nil
}

// redis returns the member's current client.
func (t *target) redis() *redis.Client { return t.ep.current() }

// do runs one single-key command on c (one of t's clients), following one
// MOVED or ASK redirect (an OSS Cluster member answers MOVED for keys of
// other shards).
func (t *target) do(ctx context.Context, c *redis.Client, args ...any) *redis.Cmd {
	cmd := c.Do(ctx, args...)
	if addr, ask, ok := redirect(cmd.Err()); ok {
		n := t.ep.node(addr)
		if ask {
			pipe := n.Pipeline()
			pipe.Do(ctx, "ASKING")
			cmd = pipe.Do(ctx, args...)
			_, _ = pipe.Exec(ctx)
			return cmd
		}
		cmd = n.Do(ctx, args...)
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

// reset makes the member's endpoint dial afresh (see endpoint.reset) if c
// is still its client.
func (t *target) reset(c *redis.Client) { t.ep.reset(c) }
