package dnsserver

import (
	"hash/maphash"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/aagtm/aagtm/config"
)

// verdict is the rate limiter's decision on one UDP response.
type verdict uint8

const (
	// pass: send the response.
	pass verdict = iota
	// drop: send nothing.
	drop
	// slip: send an empty truncated (TC) response instead, so a real
	// client retries over TCP, which is never limited.
	slip
)

const (
	limiterShards = 64
	// limiterShardMax bounds the buckets a shard keeps; past it, idle
	// buckets are swept, and if the shard is still mostly full (a flood of
	// spoofed sources) it is cleared.
	limiterShardMax = 8192
)

// limiter is response rate limiting: one token bucket per (client network,
// response key), refilled at ResponsesPerSecond with a burst of one second's
// worth. A limiter belongs to one UDP socket's loop, which both the fast
// and the full path of that socket use, so it takes no lock: a check is one
// hash and one map access. The buckets live in shards so that sweeping a
// full shard stays short.
type limiter struct {
	rate       float64 // tokens per nanosecond
	burst      float64
	refill     int64 // nanoseconds to refill an empty bucket
	slip       uint32
	v4, v6     int
	seed       maphash.Seed
	epoch      time.Time
	shards     [limiterShards]limiterShard
	shardLimit int
}

type limiterShard struct {
	m map[uint64]bucket
}

type bucket struct {
	tokens  float64
	last    int64  // nanoseconds since epoch
	limited uint32 // responses over the limit so far, for Slip
}

// newLimiter returns a limiter for rl, or nil when it is off.
func newLimiter(rl config.RateLimit) *limiter {
	if rl.ResponsesPerSecond <= 0 {
		return nil
	}
	l := &limiter{
		rate:       float64(rl.ResponsesPerSecond) / float64(time.Second),
		burst:      float64(rl.ResponsesPerSecond),
		refill:     int64(time.Second),
		slip:       uint32(max(rl.Slip, 0)),
		v4:         rl.IPv4PrefixLen,
		v6:         rl.IPv6PrefixLen,
		seed:       maphash.MakeSeed(),
		epoch:      time.Now(),
		shardLimit: limiterShardMax,
	}
	if l.v4 <= 0 || l.v4 > 32 {
		l.v4 = 24
	}
	if l.v6 <= 0 || l.v6 > 128 {
		l.v6 = 56
	}
	for i := range l.shards {
		l.shards[i].m = map[uint64]bucket{}
	}
	return l
}

// limit applies rate limiting to resp, a UDP response to client: resp
// itself, an empty TC reply (slip) or nil (drop).
func (l *limiter) limit(resp *dns.Msg, client netip.Addr, now time.Time) (*dns.Msg, verdict) {
	switch l.check(client, limitKey(resp), now) {
	case drop:
		return nil, drop
	case slip:
		m := &dns.Msg{MsgHdr: resp.MsgHdr, Question: resp.Question}
		m.Rcode = dns.RcodeSuccess
		m.Authoritative = false
		m.Truncated = true
		return m, slip
	}
	return resp, pass
}

// limitKey groups responses the way BIND's RRL does, so that floods of
// random names share one bucket: a positive or NODATA response by query
// name, every NXDOMAIN together, every error together.
func limitKey(resp *dns.Msg) string {
	switch resp.Rcode {
	case dns.RcodeSuccess:
		if len(resp.Question) == 1 {
			return strings.ToLower(resp.Question[0].Name)
		}
		return "*error"
	case dns.RcodeNameError:
		return "*nxdomain"
	}
	return "*error"
}

// check takes a token from the bucket of (client's network, key).
func (l *limiter) check(client netip.Addr, key string, now time.Time) verdict {
	h := l.hash(client, key)
	t := now.Sub(l.epoch).Nanoseconds()
	sh := &l.shards[h%limiterShards]
	b, ok := sh.m[h]
	switch {
	case !ok:
		if len(sh.m) >= l.shardLimit {
			l.sweep(sh, t)
		}
		b.tokens, b.last = l.burst, t
	case t > b.last:
		b.tokens = min(l.burst, b.tokens+float64(t-b.last)*l.rate)
		b.last = t
	}
	// Times may come out of order (a caller's, a test's): a t earlier
	// than b.last refills nothing, rather than taking tokens back (and
	// limiting a client within its burst).
	v := pass
	if b.tokens >= 1 {
		b.tokens--
	} else {
		b.limited++
		v = drop
		if l.slip > 0 && b.limited%l.slip == 0 {
			v = slip
		}
	}
	sh.m[h] = b
	return v
}

// sweep forgets the buckets of sh that are full again (as good as new), and
// clears sh when that frees too little.
func (l *limiter) sweep(sh *limiterShard, now int64) {
	for k, b := range sh.m {
		if now-b.last >= l.refill {
			delete(sh.m, k)
		}
	}
	if len(sh.m) >= l.shardLimit*3/4 {
		clear(sh.m)
	}
}

// hash returns the bucket key of (client's network, key).
func (l *limiter) hash(client netip.Addr, key string) uint64 {
	client = client.Unmap()
	bits := l.v6
	if client.Is4() {
		bits = l.v4
	}
	var a [16]byte
	if p, err := client.Prefix(bits); err == nil {
		a = p.Addr().As16()
	}
	var h maphash.Hash
	h.SetSeed(l.seed)
	h.Write(a[:])
	h.WriteString(key)
	return h.Sum64()
}
