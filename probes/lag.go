package probes

import (
	"strconv"
	"strings"
	"time"

	"github.com/aagtm/aagtm/config"
)

// defaultHeartbeatPrefix is used when Probes.HeartbeatPrefix is not set.
const defaultHeartbeatPrefix = "aagtm:hb:"

// heartbeat is one region's heartbeat value: written by that region's
// agent to its local member, carried to the others by Active-Active
// replication. Stored as "<seq> <unix nanos> <writer agent id>".
type heartbeat struct {
	seq    uint64
	ts     int64 // writer's clock, Unix nanoseconds
	writer string
}

// String encodes the heartbeat as stored in Redis.
func (h heartbeat) String() string {
	return strconv.FormatUint(h.seq, 10) + " " + strconv.FormatInt(h.ts, 10) + " " + h.writer
}

// parseHeartbeat decodes a stored heartbeat; ok is false for anything
// else (a foreign value under our key is treated as absent).
func parseHeartbeat(s string) (heartbeat, bool) {
	f := strings.SplitN(s, " ", 3)
	if len(f) != 3 || f[2] == "" {
		return heartbeat{}, false
	}
	seq, err1 := strconv.ParseUint(f[0], 10, 64)
	ts, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return heartbeat{}, false
	}
	return heartbeat{seq: seq, ts: ts, writer: f[2]}, true
}

func heartbeatPrefix(p config.Probes) string {
	if p.HeartbeatPrefix != "" {
		return p.HeartbeatPrefix
	}
	return defaultHeartbeatPrefix
}

// heartbeatKey is <prefix>{<region>}: the braces make the region a hash
// tag, so the key has one slot whatever the prefix.
func heartbeatKey(prefix, region string) string {
	return prefix + "{" + region + "}"
}

// lagInput is what the lag computation needs of one member after a round.
type lagInput struct {
	member   string
	database string
	region   string
	// heartbeats read from the member this round, by source region; nil
	// when the lag check failed or did not run.
	heartbeats map[string]heartbeat
}

// computeLag returns, per member, its replication lag behind each source
// region, from heartbeats read in one round:
//
//	lag(s→m) = ts_on_s − ts_on_m
//
// where ts_on_s is region s's heartbeat as read from s's own member and
// ts_on_m the same key as read from member m. Both timestamps come from
// the same writer's clock (s's agent), so no clocks are compared across
// hosts. When a database has several members in s, the freshest read
// among them is the reference.
//
// A source is omitted for a member when it cannot be measured: s's own
// member could not be read this round (down, or unreachable from this
// vantage: the lag behind s is then unknown here, and the policy keeps the
// last lag it saw), m could not be read, m holds no heartbeat of s yet,
// or the two values come from different writers (two agents in one region
// writing the same key; their clocks are not comparable). A member has no
// lag behind its own region. A negative difference (m read after a newer
// value replicated to it) counts as zero.
//
// The resolution is the writer's probe interval: a heartbeat is written
// once per round, so lag is measured in whole intervals.
func computeLag(in []lagInput) map[string]map[string]time.Duration {
	type ref struct {
		hb heartbeat
		ok bool
	}
	// reference heartbeat per (database, source region)
	refs := map[[2]string]ref{}
	for _, m := range in {
		if m.heartbeats == nil {
			continue
		}
		hb, ok := m.heartbeats[m.region]
		if !ok {
			continue
		}
		k := [2]string{m.database, m.region}
		if r := refs[k]; !r.ok || hb.ts > r.hb.ts {
			refs[k] = ref{hb: hb, ok: true}
		}
	}
	out := map[string]map[string]time.Duration{}
	for _, m := range in {
		for src, hb := range m.heartbeats {
			if src == m.region {
				continue
			}
			r, ok := refs[[2]string{m.database, src}]
			if !ok || r.hb.writer != hb.writer {
				continue
			}
			lag := time.Duration(r.hb.ts - hb.ts)
			if lag < 0 {
				lag = 0
			}
			if out[m.member] == nil {
				out[m.member] = map[string]time.Duration{}
			}
			out[m.member][src] = lag
		}
	}
	return out
}
