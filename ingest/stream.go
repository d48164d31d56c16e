package ingest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/aagtm/aagtm/api"
	"github.com/aagtm/aagtm/policy"
)

// Refusal reasons, the reason label of aagtm_ingest_refused_streams_total.
const (
	refusedAuth     = "auth"          // no or wrong credentials, unknown agent
	refusedAgentCap = "agent_streams" // the agent holds its cap of streams
	refusedTotalCap = "streams"       // the node holds its cap of streams
	refusedImposter = "impersonation" // a report for another agent than the stream's
	refusedRevoked  = "revoked"       // credentials no longer valid after a reload
)

// reportService is the gRPC service of one server: stopping ends its
// streams.
type reportService struct {
	api.UnimplementedReportServiceServer
	in       *Ingest
	stopping <-chan struct{}
}

// Stream authenticates the peer, admits the stream under the caps, then
// answers every report with an ack until the agent closes the stream, the
// stream fails, its credentials are revoked or the server stops.
func (s *reportService) Stream(stream api.ReportService_StreamServer) error {
	in := s.in
	ctx := stream.Context()
	p, err := authenticate(ctx, in.view.Load())
	if err != nil {
		in.refuse(p, refusedAuth, err)
		return err
	}
	sess, err := in.admit(p)
	if err != nil {
		return err
	}
	defer in.release(sess)
	in.logger.Debug("report stream opened", "remote", p.remote, "auth", p.method, "agent", p.agent)
	reports := make(chan *api.Report)
	errc := make(chan error, 1)
	// Recv blocks; this goroutine ends when the stream does (the handler
	// returning cancels the stream's context, which ends Recv).
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case reports <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-s.stopping:
			return status.Error(codes.Unavailable, "node shutting down")
		case err := <-sess.end:
			in.metrics.refusedStream(status.Code(err).String(), refusedRevoked)
			return err
		case err := <-errc:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case r := <-reports:
			ack, err := in.handle(sess, r)
			if err != nil {
				in.refuse(p, refusedImposter, err)
				return err
			}
			if err := stream.Send(ack); err != nil {
				return err
			}
		}
	}
}

// admit registers an authenticated stream, or refuses it with
// ResourceExhausted when the agent or the node holds its cap of streams.
func (in *Ingest) admit(p principal) (*openStream, error) {
	total := 2*len(in.view.Load().agents) + 16
	in.mu.Lock()
	var err error
	switch {
	case p.method != "" && stillValid(p, in.view.Load()) != nil:
		// Authenticated under a config that a concurrent Reconfigure has
		// just replaced; checked under in.mu, so either this check or
		// Reconfigure's sweep of the open streams sees the new config.
		err = stillValid(p, in.view.Load())
	case len(in.streams) >= total:
		err = status.Errorf(codes.ResourceExhausted, "this node holds its cap of %d open report streams; retry later", total)
	case p.agent != "":
		n := 0
		for s := range in.streams {
			if s.p.agent == p.agent {
				n++
			}
		}
		if n >= MaxAgentStreams {
			err = status.Errorf(codes.ResourceExhausted,
				"agent %q already holds %d open report streams to this node (the cap); close one first", p.agent, n)
		}
	}
	if err != nil {
		in.mu.Unlock()
		reason := refusedTotalCap
		switch {
		case status.Code(err) != codes.ResourceExhausted:
			reason = refusedRevoked
		case strings.Contains(err.Error(), "already holds"):
			reason = refusedAgentCap
		}
		in.refuse(p, reason, err)
		return nil, err
	}
	sess := &openStream{p: p, since: in.opts.now(), agent: p.agent, end: make(chan error, 1)}
	in.streams[sess] = struct{}{}
	in.mu.Unlock()
	in.metrics.streamOpen(1)
	return sess, nil
}

func (in *Ingest) release(sess *openStream) {
	in.mu.Lock()
	delete(in.streams, sess)
	in.mu.Unlock()
	in.metrics.streamOpen(-1)
}

// refuse counts a refused stream and logs it at Warn at most once per
// warnEvery per source address (Debug otherwise).
func (in *Ingest) refuse(p principal, reason string, err error) {
	code := status.Code(err).String()
	in.metrics.refusedStream(code, reason)
	source := p.remote
	if host, _, err := net.SplitHostPort(p.remote); err == nil {
		source = host
	}
	kv := []any{"remote", p.remote, "agent", p.agent, "code", code, "error", status.Convert(err).Message()}
	if in.refused.allow(source, time.Now()) {
		in.logger.Warn("report stream refused", kv...)
		return
	}
	in.logger.Debug("report stream refused", kv...)
}

// handle validates and sequences one report, passes its observations to
// the sink and returns the ack. An error (a report for another agent than
// the stream's principal) ends the stream.
func (in *Ingest) handle(sess *openStream, r *api.Report) (*api.Ack, error) {
	now := in.opts.now()
	v := in.view.Load()
	p := sess.p
	ack := &api.Ack{ConfigHash: v.hash, Node: in.opts.node}

	id := r.GetAgentId()
	if p.agent != "" {
		if id == "" {
			id = p.agent
		}
		if id != p.agent {
			in.metrics.report(p.agent, resultImpersonation)
			err := status.Errorf(codes.PermissionDenied,
				"report names agent %q but this stream is authenticated as %q (%s): an agent may report only for itself", id, p.agent, p.method)
			if ag, ok := v.agents[p.agent]; ok {
				t := in.track(p.agent, ag.Region, now)
				t.mu.Lock()
				t.status.Refused++
				t.status.LastRefusal, t.status.LastRefusalAt = status.Convert(err).Message(), now
				t.mu.Unlock()
			}
			return nil, err
		}
	}
	ag, ok := v.agents[id]
	if !ok {
		in.metrics.report("unknown", resultRejected)
		return in.reject(ack, nil, now, id, "unknown agent %q: it is not in this node's config (agents)", id), nil
	}

	t := in.track(id, ag.Region, now)
	// Held until the observations are with the sink: one agent's reports
	// are sequenced and delivered in one order.
	t.mu.Lock()
	defer t.mu.Unlock()
	t.status.Region = ag.Region
	ack.Seq = t.status.LastSeq
	if r.GetRegion() != ag.Region {
		t.status.Refused++
		in.metrics.report(id, resultRejected)
		return in.reject(ack, t, now, id, "agent %q is bound to region %q, but its report is for region %q",
			id, ag.Region, r.GetRegion()), nil
	}
	if !t.allow(now, in.opts.rate) {
		t.status.Dropped++
		in.metrics.report(id, resultRateLimited)
		return in.reject(ack, t, now, id, "rate limit: more than %g reports/s from agent %q; report dropped", in.opts.rate, id), nil
	}
	// A new boot id starts the agent's sequence afresh; the switch is
	// made by the boot's first accepted report.
	boot, seq := r.GetBootId(), r.GetSeq()
	restarted := t.status.Accepted > 0 && boot != t.status.BootID
	var baseline uint64
	if boot == t.status.BootID {
		baseline = t.status.LastSeq
	} else {
		ack.Seq = 0
	}
	if seq <= baseline || seq == 0 {
		t.status.Refused++
		in.metrics.report(id, resultStaleSeq)
		return in.reject(ack, t, now, id, "stale seq %d: agent %q (boot %s) already reported seq %d; a seq must advance within a boot",
			seq, id, boot, baseline), nil
	}
	if restarted {
		// At most once per warnEvery per agent at Info: two processes
		// running as one agent would otherwise log every round.
		kv := []any{"agent", id, "old_boot_id", t.status.BootID, "boot_id", boot, "last_seq", t.status.LastSeq, "seq", seq}
		if in.warned.allow(id+"\x00restarted", now) {
			in.logger.Info("agent restarted", kv...)
		} else {
			in.logger.Debug("agent restarted", kv...)
		}
	}
	t.status.BootID = boot

	// Assigned under t.mu, so one agent's observations reach the sink in
	// the order of their numbers.
	n := in.accepted.Add(1)
	obs := make([]policy.Observation, 0, len(r.GetMembers()))
	var rejected uint32
	for _, m := range r.GetMembers() {
		if !v.members[m.GetMember()] {
			if rejected < maxRejectedNames {
				ack.RejectedMembers = append(ack.RejectedMembers, m.GetMember())
			}
			rejected++
			continue
		}
		obs = append(obs, observation(id, ag.Region, n, now, m))
	}
	ack.RejectedMemberCount = rejected
	t.status.LastSeen, t.status.LastSeq, t.status.Remote = now, seq, p.remote
	t.status.ConfigHash = r.GetConfigHash()
	t.status.Accepted++
	ack.Seq, ack.Accepted = seq, true
	in.metrics.report(id, resultAccepted)
	in.metrics.unknownMembers(int(rejected))
	if sess.agent == "" {
		in.mu.Lock()
		sess.agent = id
		in.mu.Unlock()
	}

	if h := r.GetConfigHash(); h != "" && h != v.hash {
		in.warn(id, "agent runs a different config than this node", now, "agent_config_hash", h, "node_config_hash", v.hash)
	}
	if rejected > 0 {
		more := ""
		if rejected > maxRejectedNames {
			more = fmt.Sprintf(" and %d more", rejected-maxRejectedNames)
		}
		ack.Error = fmt.Sprintf("unknown members %s%s: not in this node's config; their entries were dropped",
			strings.Join(ack.RejectedMembers, ", "), more)
		in.warn(id, "report names unknown members", now, "members", ack.RejectedMembers, "count", rejected)
	}
	if len(obs) > 0 && in.sink != nil {
		in.sink(obs)
	}
	return ack, nil
}

// reject fills the ack's error, records it as the agent's last refusal
// (t is nil for an unknown agent; callers hold t.mu) and logs it at Warn
// (at most once per warnEvery per agent and reason).
func (in *Ingest) reject(ack *api.Ack, t *agentTrack, now time.Time, id, format string, args ...any) *api.Ack {
	ack.Error = fmt.Sprintf(format, args...)
	if t != nil {
		t.status.LastRefusal, t.status.LastRefusalAt = ack.Error, now
	}
	in.warn(id, "report refused", now, "error", ack.Error)
	return ack
}

// warn logs at Warn, or at Debug when the same agent had the same warning
// less than warnEvery ago. The key is the agent and the message (plus the
// first word of an error), so a stream of refusals differing only in
// numbers is one warning per warnEvery.
func (in *Ingest) warn(id, msg string, now time.Time, kv ...any) {
	key := id + "\x00" + msg
	if len(kv) >= 2 && kv[0] == "error" {
		if s, ok := kv[1].(string); ok {
			first, _, _ := strings.Cut(s, " ")
			key += "\x00" + first
		}
	}
	kv = append([]any{"agent", id}, kv...)
	if in.warned.allow(key, now) {
		in.logger.Warn(msg, kv...)
		return
	}
	in.logger.Debug(msg, kv...)
}

// observation converts one member entry; seq is the node's number of the
// accepted report.
func observation(agent, region string, seq uint64, now time.Time, m *api.MemberReport) policy.Observation {
	o := policy.Observation{
		Agent: agent, Region: region, Member: m.GetMember(), Seq: seq, Time: now,
		RTT: max(0, m.GetRtt().AsDuration()),
	}
	for _, c := range m.GetChecks() {
		o.Checks = append(o.Checks, policy.CheckResult{
			Check: c.GetName(), Outcome: policy.Outcome(c.GetOutcome()), OK: c.GetOk(), Error: c.GetError(),
			Duration: max(0, c.GetDuration().AsDuration()),
		})
	}
	if len(m.GetLag()) > 0 {
		o.Lag = make(map[string]time.Duration, len(m.GetLag()))
		for src, d := range m.GetLag() {
			o.Lag[src] = max(0, d.AsDuration())
		}
	}
	return o
}
