// Package dnsserver is aagtm's authoritative DNS server: it answers queries
// for the GTM zone from the current policy snapshot, over UDP and TCP.
//
// A Server holds an immutable, precomputed view of the zone (apex SOA and
// NS with glue, and for every database hostname and client region the
// ready-made answer records and the `_why` explanation). Update builds a new
// view from a config and a policy snapshot and swaps it in atomically, so a
// query never sees half a change. The query path takes no lock, does no
// I/O and computes nothing the view could hold. Each UDP socket is served
// by a loop that reads and writes datagrams in batches and answers the
// common query (A or AAAA for a database hostname) on a fast path, from
// reply bytes prepared with the view, byte for byte what the full path
// would send; the loop owns its rate limiter and metric counts.
//
// At the edge it answers DNS Cookies (RFC 7873, RFC 9018 server cookies),
// caps UDP replies to queries without a valid server cookie at a multiple
// of the query's size, rate-limits UDP replies, and bounds TCP connections
// (in total and per source) and their timeouts.
//
// The package does not decide answers (package policy does), does not
// recurse, transfer zones, sign (DNSSEC) or read configuration files, and
// logs nothing per query above Trace. See README.md for the behaviour table
// (which rcode when) and the metrics.
package dnsserver
