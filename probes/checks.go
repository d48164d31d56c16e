package probes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aagtm/aagtm/config"
)

// probeKeyPrefix prefixes the keyspace check's keys:
// aagtm:probe:{<slot tag>}:<agent id>:<member>. The hash tag comes first so
// that an agent id containing braces cannot move the key to another slot,
// and the agent id keeps agents from overwriting each other's keys (under
// Active-Active replication a concurrent SET from another region could
// otherwise win and fail our GET); the member name does the same for
// members that name one endpoint, whose probes may overlap.
const probeKeyPrefix = "aagtm:probe:"

// defaultKeyTTL is used when Probes.KeyTTL is not set.
const defaultKeyTTL = time.Minute

// defaultRESTLagTolerance is availability_lag_tolerance_ms when the member
// sets none.
const defaultRESTLagTolerance = 100 * time.Millisecond

// probe is one check run's view of one member in one round: the target,
// the round's identity and the settings, plus what checks leave for the
// agent (heartbeat values read by the lag check).
type probe struct {
	t *target
	// c is the member's client for this probe, taken once at its start,
	// so that a reset by another member sharing the endpoint does not
	// switch clients under a running check.
	c        *redis.Client
	agentID  string
	region   string
	seq      uint64
	settings *config.Probes
	// hbRegions are the regions whose heartbeats the lag check reads: the
	// regions of the member's database.
	hbRegions []string

	// heartbeats is set by the lag check: the values read, by region.
	heartbeats map[string]heartbeat
}

// check is one kind of health check.
type check interface {
	// name returns the check's config name.
	name() config.Check
	// skip reports whether the check does not apply to this member (e.g.
	// read-only mode, no REST endpoint); a skipped check is not reported.
	skip(p *probe) bool
	// run runs the check once, bounded by ctx.
	run(ctx context.Context, p *probe) result
}

// newCheck returns the check named c.
func newCheck(c config.Check) (check, error) {
	switch c {
	case config.CheckPing:
		return pingCheck{}, nil
	case config.CheckEcho:
		return echoCheck{}, nil
	case config.CheckKeyspace:
		return keyspaceCheck{}, nil
	case config.CheckLag:
		return lagCheck{}, nil
	case config.CheckREST:
		return restCheck{}, nil
	case config.CheckCommand:
		return commandCheck{}, nil
	}
	return nil, fmt.Errorf("probes.checks: unknown check %q (want ping, echo, keyspace, lag, rest or command)", c)
}

// execPipe runs a pipeline and leaves every command with its own result
// or error. When the pipeline fails before any reply, e.g. because the
// connection's AUTH was refused, go-redis returns the error without
// setting it on the commands (it does so only for non-reply errors);
// execPipe sets it on each, so no command looks like an empty success.
func execPipe(ctx context.Context, pipe redis.Pipeliner) {
	cmds, err := pipe.Exec(ctx)
	if err == nil {
		return
	}
	for _, c := range cmds {
		if c.Err() != nil {
			return // replies arrived; errors are per command
		}
	}
	for _, c := range cmds {
		c.SetErr(err)
	}
}

// randomToken returns 16 random hex characters.
func randomToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// pingCheck sends PING and expects PONG.
type pingCheck struct{}

func (pingCheck) name() config.Check { return config.CheckPing }
func (pingCheck) skip(*probe) bool   { return false }
func (pingCheck) run(ctx context.Context, p *probe) result {
	got, err := p.c.Ping(ctx).Result()
	if err != nil {
		return failErr(config.CheckPing, "PING", err)
	}
	if got != "PONG" {
		return fail(config.CheckPing, OutcomeWrongReply, "PING: got %q, want PONG", got)
	}
	return pass(config.CheckPing)
}

// echoCheck sends ECHO of a random token and expects it back: proof that
// the reply is ours and fresh, not a proxy's canned answer. Redis answers
// ECHO even while it loads its dataset, so a DBSIZE rides in the same round
// trip: it is refused with LOADING until the data is readable (and behind a
// proxy it reaches the shards).
type echoCheck struct{}

func (echoCheck) name() config.Check { return config.CheckEcho }
func (echoCheck) skip(*probe) bool   { return false }
func (echoCheck) run(ctx context.Context, p *probe) result {
	token := randomToken()
	pipe := p.c.Pipeline()
	echo := pipe.Echo(ctx, token)
	size := pipe.DBSize(ctx)
	execPipe(ctx, pipe)
	got, err := echo.Result()
	if err != nil {
		return failErr(config.CheckEcho, "ECHO", err)
	}
	if got != token {
		return fail(config.CheckEcho, OutcomeWrongReply, "ECHO: got %q, want %q", got, token)
	}
	if err := size.Err(); err != nil {
		return failErr(config.CheckEcho, "DBSIZE", err)
	}
	return pass(config.CheckEcho)
}

// keyspaceCheck writes and reads back probe keys on every shard. With the
// OSS Cluster API (CLUSTER SLOTS answers with more than one range) it sends
// one key per slot range straight to the range's node; otherwise (a proxy,
// a single shard) it sends KeyspaceKeys keys spread evenly over the slots
// through the member's endpoint, so that a sharding proxy forwards them to
// every shard. A single PING behind a proxy reaches only one shard.
type keyspaceCheck struct{}

func (keyspaceCheck) name() config.Check { return config.CheckKeyspace }

// skip: the check writes, so it is off in read-only mode.
func (keyspaceCheck) skip(p *probe) bool { return p.settings.ReadOnly }

// shardKeys are the probe keys one node receives.
type shardKeys struct {
	addr  string // "" for the member's endpoint
	slots string // "0-5460", for error texts
	keys  []string
}

func (keyspaceCheck) run(ctx context.Context, p *probe) result {
	plan, res := keyspacePlan(ctx, p)
	if plan == nil {
		return res
	}
	ttl := p.settings.KeyTTL
	if ttl <= 0 {
		ttl = defaultKeyTTL
	}
	value := randomToken() + ":" + strconv.FormatUint(p.seq, 10)
	errs := make([]result, len(plan))
	var wg sync.WaitGroup
	for i, sk := range plan {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = setGet(ctx, p, sk, value, ttl)
		}()
	}
	wg.Wait()
	for _, r := range errs {
		if !r.ok() {
			return r
		}
	}
	return pass(config.CheckKeyspace)
}

// keyspacePlan decides which keys go to which node. It returns nil and a
// failed result when the member cannot even answer CLUSTER SLOTS for a
// reason other than "not a cluster".
func keyspacePlan(ctx context.Context, p *probe) ([]shardKeys, result) {
	key := func(slot int) string {
		return probeKeyPrefix + "{" + slotTag(slot) + "}:" + p.agentID + ":" + p.t.member.Name
	}
	ranges, err := p.c.ClusterSlots(ctx).Result()
	if err != nil && classify(err) != OutcomeError {
		// Timeout, unreachable, auth, loading: the member is failing;
		// "ERR ... cluster support disabled" is an OutcomeError and means
		// "not an OSS cluster".
		return nil, failErr(config.CheckKeyspace, "CLUSTER SLOTS", err)
	}
	if err == nil && len(ranges) > 1 {
		plan := make([]shardKeys, 0, len(ranges))
		for _, r := range ranges {
			if len(r.Nodes) == 0 {
				continue
			}
			plan = append(plan, shardKeys{
				addr:  r.Nodes[0].Addr,
				slots: fmt.Sprintf("%d-%d", r.Start, r.End),
				keys:  []string{key(int(r.Start+r.End) / 2)},
			})
		}
		return plan, result{}
	}
	n := p.settings.KeyspaceKeys
	if n <= 0 {
		n = 1
	}
	sk := shardKeys{slots: "all"}
	for _, s := range spreadSlots(n) {
		sk.keys = append(sk.keys, key(s))
	}
	return []shardKeys{sk}, result{}
}

// setGet writes every key of sk with value and reads each back, in one
// pipeline.
func setGet(ctx context.Context, p *probe, sk shardKeys, value string, ttl time.Duration) result {
	c := p.c
	where := "endpoint"
	if sk.addr != "" {
		c = p.t.ep.node(sk.addr)
		where = "shard " + sk.addr + " (slots " + sk.slots + ")"
	}
	pipe := c.Pipeline()
	sets := make([]*redis.StatusCmd, len(sk.keys))
	gets := make([]*redis.StringCmd, len(sk.keys))
	for i, k := range sk.keys {
		sets[i] = pipe.Set(ctx, k, value, ttl)
		gets[i] = pipe.Get(ctx, k)
	}
	execPipe(ctx, pipe)
	for i, k := range sk.keys {
		if err := sets[i].Err(); err != nil {
			return failErr(config.CheckKeyspace, where+": SET "+k, err)
		}
		got, err := gets[i].Result()
		if err != nil {
			return failErr(config.CheckKeyspace, where+": GET "+k, err)
		}
		if got != value {
			return fail(config.CheckKeyspace, OutcomeWrongReply, "%s: GET %s: got %q, want %q", where, k, got, value)
		}
	}
	return pass(config.CheckKeyspace)
}

// lagCheck reads every region's heartbeat from the member. It passes when
// the reads succeed; the lag itself is computed after the round from every
// member's reads (see computeLag) and judged by policy. The agent's own
// heartbeat is written by Agent.heartbeatLoop, every
// Probes.HeartbeatInterval, independent of rounds, so the lag's resolution
// is the heartbeat interval, not the probe interval.
type lagCheck struct{}

func (lagCheck) name() config.Check { return config.CheckLag }
func (lagCheck) skip(*probe) bool   { return false }
func (lagCheck) run(ctx context.Context, p *probe) result {
	prefix := heartbeatPrefix(*p.settings)
	pipe := p.c.Pipeline()
	cmds := make([]*redis.StringCmd, len(p.hbRegions))
	for i, r := range p.hbRegions {
		cmds[i] = pipe.Get(ctx, heartbeatKey(prefix, r))
	}
	execPipe(ctx, pipe)
	read := make(map[string]heartbeat, len(p.hbRegions))
	for i, r := range p.hbRegions {
		key := heartbeatKey(prefix, r)
		s, err := cmds[i].Result()
		if _, _, moved := redirect(err); moved {
			s, err = p.t.do(ctx, p.c, "GET", key).Text()
		}
		switch {
		case errors.Is(err, redis.Nil):
			continue // never written or not replicated yet
		case err != nil:
			return failErr(config.CheckLag, "GET "+key, err)
		}
		if hb, ok := parseHeartbeat(s); ok {
			read[r] = hb
		}
	}
	p.heartbeats = read
	return pass(config.CheckLag)
}

// restCheck asks Redis Software's lag-aware availability API of the
// member's cluster:
//
//	GET {url}/v1/local/bdbs/{uid}/endpoint/availability?extend_check=lag&availability_lag_tolerance_ms=N
//
// HTTP 200 passes; any other status fails, carrying the JSON body's
// error_code (no_quorum, bdb_endpoint_unavailable, ...). User and password
// in the URL are sent as basic auth.
type restCheck struct{}

func (restCheck) name() config.Check { return config.CheckREST }

// skip: members without a REST endpoint (e.g. open-source Redis) have
// nothing to ask.
func (restCheck) skip(p *probe) bool { return p.t.member.REST.URL == "" }

func (restCheck) run(ctx context.Context, p *probe) result {
	rest := p.t.member.REST
	u, err := url.Parse(strings.TrimRight(rest.URL, "/"))
	if err != nil {
		return fail(config.CheckREST, OutcomeError, "parse REST URL: %v", err)
	}
	tol := rest.LagTolerance
	if tol <= 0 {
		tol = defaultRESTLagTolerance
	}
	user := u.User
	u.User = nil
	u = u.JoinPath("v1", "local", "bdbs", strconv.Itoa(rest.BDB), "endpoint", "availability")
	u.RawQuery = url.Values{
		"extend_check":                  {"lag"},
		"availability_lag_tolerance_ms": {strconv.FormatInt(tol.Milliseconds(), 10)},
	}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fail(config.CheckREST, OutcomeError, "build request: %v", err)
	}
	req.Header.Set("Accept", "application/json")
	if user != nil {
		pw, _ := user.Password()
		req.SetBasicAuth(user.Username(), pw)
	}
	if p.t.http == nil {
		return fail(config.CheckREST, OutcomeError, "no REST client")
	}
	resp, err := p.t.http.Do(req)
	if err != nil {
		return failErr(config.CheckREST, "GET availability", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK {
		return pass(config.CheckREST)
	}
	var e struct {
		ErrorCode   string `json:"error_code"`
		Description string `json:"description"`
	}
	_ = json.Unmarshal(body, &e)
	text := "HTTP " + strconv.Itoa(resp.StatusCode)
	if e.ErrorCode != "" {
		text += ": " + e.ErrorCode
	}
	if e.Description != "" {
		text += ": " + e.Description
	}
	o := OutcomeError
	switch resp.StatusCode {
	case http.StatusServiceUnavailable:
		o = OutcomeUnavailable
	case http.StatusUnauthorized, http.StatusForbidden:
		o = OutcomeAuth
	}
	return fail(config.CheckREST, o, "availability: %s", text)
}

// commandCheck runs Probes.Command.Args and compares the reply, as text,
// with Probes.Command.Expect (any reply passes when Expect is empty). Reply
// text: strings as is, integers in decimal, nil as "(nil)", arrays as their
// elements' texts joined by newlines.
type commandCheck struct{}

func (commandCheck) name() config.Check { return config.CheckCommand }
func (commandCheck) skip(p *probe) bool { return len(p.settings.Command.Args) == 0 }
func (commandCheck) run(ctx context.Context, p *probe) result {
	cc := p.settings.Command
	args := make([]any, len(cc.Args))
	for i, a := range cc.Args {
		args[i] = a
	}
	v, err := p.c.Do(ctx, args...).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return failErr(config.CheckCommand, cc.Args[0], err)
	}
	got := replyText(v)
	if cc.Expect != "" && got != cc.Expect {
		return fail(config.CheckCommand, OutcomeWrongReply, "%s: got %q, want %q", cc.Args[0], got, cc.Expect)
	}
	return pass(config.CheckCommand)
}

// replyText renders a reply for the command check.
func replyText(v any) string {
	switch x := v.(type) {
	case nil:
		return "(nil)"
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case bool:
		if x {
			return "1"
		}
		return "0"
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = replyText(e)
		}
		return strings.Join(parts, "\n")
	case error:
		return x.Error()
	default:
		return fmt.Sprint(x)
	}
}
