// Package sentinel serves the Redis Sentinel protocol subset that
// Sentinel-aware clients (go-redis FailoverClient, Jedis, redis-py, Lettuce,
// ioredis, node-redis, StackExchange.Redis) use to discover a master, and
// pushes +switch-master to subscribers the moment an answer changes.
//
// For each database name it answers the member the node's DNS would answer
// the connecting client's region, read from the same policy snapshot; it
// decides nothing itself and monitors nothing. It speaks RESP2 and RESP3
// (HELLO) with a small codec of its own (resp.go), plain or over TLS, with
// an optional password. See README.md and docs/sentinel.md.
package sentinel
