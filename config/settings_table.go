package config

// Settings declares every setting of the config file, in the order
// docs/config.md lists them: its path, type, default, documentation and
// whether a running node applies a change of it. It is the one source that
// the loader's defaults and AAGTM_* overrides, the reload rules, the
// credential-file checks and docs/config.md's reference read (see doc.go
// for how to add a setting).
var Settings = []Setting{
	// zone
	{Section: "zone", Path: "zone.name", Type: "FQDN", Default: "required", Doc: "The zone, e.g. `gtm.example.com.`. Database `cache` answers `cache.<zone.name>`."},
	{Section: "zone", Path: "zone.ns[]", Type: "list", Default: "required", Doc: "The zone's name servers, answered in this order in the apex NS set. At least one."},
	{Section: "zone", Path: "zone.ns[].name", Type: "FQDN", Default: "required", Doc: "A name server's name, e.g. `ns1.gtm.example.com.`. Listed once."},
	{Section: "zone", Path: "zone.ns[].address", Type: "IP", Default: "none", Doc: "Glue address of that server, answered in the additional section. Required (this or `addresses`) when the name is inside the zone."},
	{Section: "zone", Path: "zone.ns[].addresses", Type: "list of IP", Default: "`[]`", Doc: "More glue addresses (IPv4 and IPv6), after `address`."},
	{Section: "zone", Path: "zone.soa.mbox", Type: "FQDN", Value: "", Default: "`hostmaster.<zone.name>`", Doc: "The SOA RNAME, the responsible mailbox; `hostmaster@example.com` is accepted and written `hostmaster.example.com.`."},
	{Section: "zone", Path: "zone.soa.serial", Type: "int", Value: 0, Doc: "The SOA serial; `0` derives it from the config, so every node serves the same serial for the same file."},
	{Section: "zone", Path: "zone.soa.refresh", Type: "duration", Value: "1h", Doc: "SOA REFRESH (for secondaries; aagtm has none, any value works)."},
	{Section: "zone", Path: "zone.soa.retry", Type: "duration", Value: "10m", Doc: "SOA RETRY."},
	{Section: "zone", Path: "zone.soa.expire", Type: "duration", Value: "168h", Doc: "SOA EXPIRE."},
	{Section: "zone", Path: "zone.soa.negative_ttl", Type: "duration", Value: "5s", Doc: "SOA MINIMUM: how long resolvers cache NXDOMAIN and NODATA (RFC 2308 §4). Keep it short so a newly added database resolves quickly."},
	{Section: "zone", Path: "zone.soa.ttl", Type: "duration", Value: "1h", Doc: "TTL of the apex SOA and NS records."},

	// regions
	{Section: "regions", Path: "regions.<name>", Type: "mapping", Default: "required", Doc: "One region; its name is a DNS label (letters, digits, hyphens). At least one region."},
	{Section: "regions", Path: "regions.<name>.subnets", Type: "list of CIDR", Default: "`[]`", Doc: "Client networks of the region, e.g. `10.1.0.0/16`. No host bits; a prefix may not appear in two regions. Overlapping prefixes: the longest wins."},
	{Section: "regions", Path: "regions.<name>.prefer", Type: "list of region", Default: "`[]`", Doc: "This region's nearness order, nearest first. The region itself comes first when left out; undeclared regions are an error; regions not listed follow by name."},
	{Section: "regions", Path: "default_region", Type: "region", Value: "", Default: "the only region, if there is one", Doc: "The region of a client that matches no subnet. Required when there are several regions."},

	// databases
	{Section: "databases", Path: "databases.<name>", Type: "mapping", Default: "required", Doc: "One database; `<name>` is the hostname's first label (a DNS label not starting with `_`). At least one database."},
	{Section: "databases", Path: "databases.<name>.mode", Type: "enum", Value: "nearest", Doc: "`nearest`: each client region gets its nearest eligible member (concurrent access across members). `failover`: every client gets the first eligible member of one global order (one writer region at a time). `all`: every eligible member, nearest first; members still serving their failback hold are left out unless no settled member is eligible."},
	{Section: "databases", Path: "databases.<name>.order", Type: "list of member", Default: "file order", Doc: "The global order for `failover` mode. When set, it lists every member of the database exactly once."},
	{Section: "databases", Path: "databases.<name>.ttl", Type: "duration", Value: "5s", Doc: "TTL of the answer records; whole seconds, at least `1s`. Part of the RTO: resolvers keep a dead answer up to this long, plus up to one second (they count TTLs in whole seconds)."},
	{Section: "databases", Path: "databases.<name>.lag_tolerance", Type: "duration", Value: "500ms", Doc: "A member whose replication lag exceeds this is *lagging*: still eligible, ranked after in-sync members, never the target of a failback; it stops lagging once its lag has stayed within this for `probes.rise` × `probes.interval`. Must be positive, and above 2 × `probes.heartbeat_interval` when the `lag` check is on."},
	{Section: "databases", Path: "databases.<name>.failback_hold", Type: "duration", Value: "30s", Doc: "How long a recovered member must stay up and in sync, as observed by at least one voting vantage, before it gets its traffic back; time with no voting vantage (agents silent, node restarting) does not count. `0s` fails back at once."},
	{Section: "databases", Path: "databases.<name>.when_all_down", Type: "enum", Value: "all", Doc: "What to answer when no member is eligible: `all` (fail open: every member), `last` (the last good answer) or `servfail`."},
	{Section: "databases", Path: "databases.<name>.members[]", Type: "list", Default: "required", Doc: "The database's members. At least one."},
	{Section: "databases", Path: "databases.<name>.members[].name", Type: "string", Default: "required", Doc: "The member's name, unique across all databases; used by `aagtm drain`, metrics and logs."},
	{Section: "databases", Path: "databases.<name>.members[].region", Type: "region", Default: "required", Doc: "The declared region the member runs in."},
	{Section: "databases", Path: "databases.<name>.members[].addresses", Type: "list of IP", Default: "`[]`", Doc: "Answered as A/AAAA records. Exactly one of `addresses` and `cname`."},
	{Section: "databases", Path: "databases.<name>.members[].cname", Type: "FQDN", Default: "none", Doc: "Answered as a CNAME (cloud endpoints whose addresses change). Exactly one of `addresses` and `cname`."},
	{Section: "databases", Path: "databases.<name>.members[].redis", Type: "URL", Default: "none", Doc: "What probes connect to: `redis://host:port` or `rediss://user:password@host:port[/db]`. Required when any of the `ping`, `echo`, `keyspace`, `lag` or `command` checks is on. Passwords are masked in logs."},
	{Section: "databases", Path: "databases.<name>.members[].port", Type: "int", Default: "the `redis` URL's port, 6379 if it names none", Doc: "The port the [Sentinel endpoint](sentinel.md) answers for this member, when clients reach it on another port than the `redis` URL (the probes behind NAT or a proxy, a TLS port for clients). 1–65535. DNS answers no port."},
	{Section: "databases", Path: "databases.<name>.members[].rest.url", Type: "URL", Default: "none", Doc: "Redis Software cluster REST API base URL, e.g. `https://cluster.example.com:9443`. Required by the `rest` check."},
	{Section: "databases", Path: "databases.<name>.members[].rest.bdb", Type: "int", Default: "`0`", Doc: "The database uid in that cluster (positive). Required by the `rest` check."},
	{Section: "databases", Path: "databases.<name>.members[].rest.lag_tolerance", Type: "duration", Value: "100ms", Doc: "`availability_lag_tolerance_ms` sent with the lag-aware availability request."},
	{Section: "databases", Path: "databases.<name>.members[].rest.insecure_skip_verify", Type: "bool", Default: "`false`", Doc: "Skip TLS verification of the REST endpoint (self-signed cluster certificates)."},

	// probes
	{Section: "probes", Path: "probes.interval", Type: "duration", Value: "1s", Doc: "Time between probe rounds; at least `50ms` (100ms is the practical floor)."},
	{Section: "probes", Path: "probes.timeout", Type: "duration", Value: "500ms", Doc: "Bound of each check of each member; shorter than `interval`."},
	{Section: "probes", Path: "probes.rise", Type: "int", Value: 2, Doc: "Consecutive passes that bring a (vantage, member) pair up. At least 1."},
	{Section: "probes", Path: "probes.fall", Type: "int", Value: 2, Doc: "Consecutive failures that bring a (vantage, member) pair down. At least 1."},
	{Section: "probes", Path: "probes.quorum", Type: "string", Value: "majority", Doc: "How many voting vantages must say down for the member to be down: `majority`, `any`, `all`, or a number N from 1 to the number of agents. A vantage votes once it has `rise` passes or `fall` failures since it became fresh. `majority`, `any` and `all` decide with one voting vantage or more; a number N decides only with at least N voting vantages (else the last verdict stands). The same quorum picks the lag: per source region, the quorum-th largest unexpired sample."},
	{Section: "probes", Path: "probes.stale_after", Type: "duration", Value: "3s", Doc: "A vantage whose last pass or failure is this old (or older) is absent, not down: its vote is dropped, and it votes again only after `rise` passes or `fall` failures. `not_measured` rounds do not keep it fresh. Lag samples expire after this too. Longer than `interval`; 3× is a good value. When no vantage votes, the last verdict stands (fail-static)."},
	{Section: "probes", Path: "probes.checks", Type: "list of check", Value: []string{"ping", "keyspace", "lag"}, Doc: "Checks run each round; a member passes a round when all pass. `ping`, `echo`, `keyspace` (SET/GET of keys covering every shard), `lag` (heartbeat replication lag), `rest` (Redis Software lag-aware availability), `command` (custom)."},
	{Section: "probes", Path: "probes.read_only", Type: "bool", Value: false, Doc: "Disable every check that writes (`keyspace`, the `lag` heartbeat), e.g. for members the probe user may only read."},
	{Section: "probes", Path: "probes.keyspace_keys", Type: "int", Value: 16, Doc: "Probe keys spread over the 16384 hash slots when the member does not speak the OSS Cluster API (with it, one key per `CLUSTER SLOTS` range)."},
	{Section: "probes", Path: "probes.key_ttl", Type: "duration", Value: "60s", Doc: "Expiry of probe and heartbeat keys; at least `1s`."},
	{Section: "probes", Path: "probes.heartbeat_prefix", Type: "string", Value: "aagtm:hb:", Doc: "Heartbeat key prefix: region `r` writes `<prefix>{r}` to its local member."},
	{Section: "probes", Path: "probes.heartbeat_interval", Type: "duration", Value: "100ms", Doc: "How often each agent writes its heartbeat, independent of `probes.interval`: the resolution of measured lag (a member may read up to one heartbeat interval behind while replication is instant). From `10ms` to `probes.interval`. With the `lag` check on, every `lag_tolerance` must exceed 2 × this."},
	{Section: "probes", Path: "probes.command.args", Type: "list of string", Default: "`[]`", Doc: "The `command` check's command and arguments, e.g. `[EVAL, \"return 1\", \"0\"]`. Required when that check is on."},
	{Section: "probes", Path: "probes.command.expect", Type: "string", Default: "`\"\"`", Doc: "The reply the `command` check expects, as text."},

	// agents
	{Section: "agents", Path: "agents[]", Type: "list", Default: "one per region, id = region name", Doc: "The agents. Leave it out to run one agent per region named after it."},
	{Section: "agents", Path: "agents[].id", Type: "string", Default: "required", Doc: "The agent's identity, unique; with mTLS, what its client certificate names: the URI SAN `aagtm-agent://<id>` if it has one, else its common name."},
	{Section: "agents", Path: "agents[].region", Type: "region", Default: "required", Doc: "The declared region the agent runs in and reports from."},
	{Section: "agents", Path: "agents[].token_file", Type: "path", Default: "`\"\"`", Credential: true, Doc: "File holding this agent's own bearer token (relative paths: against the config file's folder). The agent sends it; a node maps it to this agent id only, so a stream with it can report for no other agent (refused with `PermissionDenied`). Each agent needs a different file and a different token; the file must not be empty and is a credential file (mode `0600`). Needs `tls` (or `insecure: true`), so the token never travels in plaintext. Re-read on reload: a rotated or removed token ends the streams that used the old one."},

	// nodes
	{Section: "nodes", Path: "nodes[]", Type: "list", Default: "required", Doc: "The nodes. At least one."},
	{Section: "nodes", Path: "nodes[].name", Type: "string", Default: "required", Doc: "The node's name (`aagtm serve --node NAME`), answered to `dig CH TXT id.server`. Unique."},
	{Section: "nodes", Path: "nodes[].report", Type: "host:port", Default: "required", Restart: true, Doc: "The address agents dial to stream reports, e.g. `10.0.0.5:7411`."},
	{Section: "nodes", Path: "nodes[].listen", Type: "host:port", Default: "the `report` address", Restart: true, Doc: "The address the node's report ingest listens on, when it differs from what agents dial (NAT, `0.0.0.0:7411`)."},
	{Section: "nodes", Path: "nodes[].dns", Type: "list of host:port", Value: []string{":53"}, Default: "`[\":53\"]`", Restart: true, Doc: "Addresses the DNS server listens on, UDP and TCP."},
	{Section: "nodes", Path: "nodes[].admin", Type: "host:port", Value: "127.0.0.1:8053", Restart: true, Doc: "The admin HTTP API (status, drain, force, metrics). Loopback by default; the CLI uses the `report` host when this host is unspecified (`0.0.0.0`). Off loopback, `security.admin_token_file` is required when `security.insecure` is set (without a token, `insecure` opens drain and force only on loopback). Mutations are accepted only with a `Host` header naming this node: an address of the machine, or a host or name in this config (`nodes[]` hosts and names, `zone.ns`), or `localhost`; see [operations](operations.md#admin-api-security)."},
	{Section: "nodes", Path: "nodes[].admin_tls", Type: "mapping", Default: "off", Restart: true, Doc: "Serve the admin API over HTTPS. Set `cert` and `key`; the CLI then calls `https://`."},
	{Section: "nodes", Path: "nodes[].admin_tls.cert", Type: "path", Default: "`\"\"`", Restart: true, Doc: "PEM certificate of the node's admin listener (relative paths: against the config file's folder). Its names must include the host the CLI calls (the `admin` host, or the `report` host when `admin` is unspecified). Read at start: restart the node to change it."},
	{Section: "nodes", Path: "nodes[].admin_tls.key", Type: "path", Default: "`\"\"`", Restart: true, Credential: true, Doc: "PEM private key of `cert`; a credential file (mode `0600`)."},
	{Section: "nodes", Path: "nodes[].admin_tls.ca", Type: "path", Default: "`\"\"`", Doc: "PEM CA bundle the CLI verifies this node's certificate with. Empty: the system roots. The node does not read it."},
	{Section: "nodes", Path: "nodes[].sentinel", Type: "host:port", Default: "off", Restart: true, Doc: "Serve the Redis Sentinel protocol here, e.g. `0.0.0.0:26379`: Sentinel-aware clients ask it for a database's master (the member DNS answers their region) and are pushed `+switch-master` when it changes. Off when unset. Other nodes list it in `SENTINEL SENTINELS` with the `report` host when this host is unspecified. See [sentinel](sentinel.md)."},
	{Section: "nodes", Path: "nodes[].sentinel_tls", Type: "mapping", Default: "off", Restart: true, Doc: "Serve the Sentinel endpoint over TLS only. Set `cert` and `key`."},
	{Section: "nodes", Path: "nodes[].sentinel_tls.cert", Type: "path", Default: "`\"\"`", Restart: true, Doc: "PEM certificate of the node's Sentinel listener (relative paths: against the config file's folder). Its names must include the host clients dial. Read at start: restart the node to change it."},
	{Section: "nodes", Path: "nodes[].sentinel_tls.key", Type: "path", Default: "`\"\"`", Restart: true, Credential: true, Doc: "PEM private key of `cert`; a credential file (mode `0600`)."},
	{Section: "nodes", Path: "nodes[].state_file", Type: "path", Default: "`\"\"`", Restart: true, Doc: "Where the node persists overrides (drains, forces) and its last decision across restarts. Empty: nothing persists. A relative path is relative to the config file's folder, like the security files."},

	// security
	{Section: "security", Path: "security.tls.cert", Type: "path", Value: "", Doc: "This process's certificate (PEM) for TLS between agents and nodes: a node's server certificate, an agent's client certificate naming it. `cert`, `key` and `ca` go together, and each host has its own files at these paths (or overrides them with `AAGTM_SECURITY_TLS_*`)."},
	{Section: "security", Path: "security.tls.key", Type: "path", Value: "", Credential: true, Doc: "Its private key (PEM). A credential file: mode `0600`."},
	{Section: "security", Path: "security.tls.ca", Type: "path", Value: "", Doc: "CA that verifies the peer's certificate."},
	{Section: "security", Path: "security.tls.server_name", Type: "string", Value: "", Doc: "Name agents verify the node certificates for, when it differs from the `report` host."},
	{Section: "security", Path: "security.token_file", Type: "path", Value: "", Default: "removed", Doc: "Removed: one shared token let any holder report as every agent. A config that sets it is refused with an error naming `agents[].token_file`, the per-agent replacement."},
	{Section: "security", Path: "security.insecure", Type: "bool", Value: false, Doc: "Allow plaintext, unauthenticated reports, and admin mutations without a token when no `admin_token_file` is set, on a loopback admin address only: a request arriving on any other address is refused (403), and a config whose `nodes[].admin` is off loopback is refused until `admin_token_file` is set. Labs, compose and tests only."},
	{Section: "security", Path: "security.admin_token_file", Type: "path", Value: "", Credential: true, Doc: "File holding the token that mutating admin calls (drain, force, ack-state) need as `Authorization: Bearer`. Without it mutations are refused unless `insecure` (and then only on loopback). The CLI reads it too, after `--token-file` and `AAGTM_ADMIN_TOKEN`. Must not be empty; a credential file: mode `0600`."},
	{Section: "security", Path: "security.sentinel_password_file", Type: "path", Value: "", Restart: true, Credential: true, Doc: "File holding the password Sentinel clients must give (`AUTH <password>`, `AUTH default <password>` or `HELLO 3 AUTH default <password>`) before any other command; the same on every node, as clients use one password for all sentinels. Empty: no password. Must not be empty; a credential file: mode `0600`. Read at start: restart the node to change it."},

	// dns
	{Section: "dns", Path: "dns.max_udp_size", Type: "int", Value: 1232, Doc: "Cap on the EDNS0 UDP payload size honoured; larger answers are truncated (TC) and retried over TCP. 512–65535; 1232 avoids IP fragmentation."},
	{Section: "dns", Path: "dns.reuse_port", Type: "int", Value: 1, Restart: true, Doc: "UDP sockets per address with SO_REUSEPORT; up to the number of cores."},
	{Section: "dns", Path: "dns.rate_limit.responses_per_second", Type: "int", Value: 200, Doc: "Response rate limit of UDP replies per client network and name, with a burst of one second's worth; `0` disables it. TCP and queries with a valid server cookie are never limited. 200 is NSD's default (`rrl-ratelimit`, per /24 and name, like ours); see [operations](operations.md#rate-limiting) for why."},
	{Section: "dns", Path: "dns.rate_limit.slip", Type: "int", Value: 2, Doc: "Answer every Nth limited query with TC (the client retries over TCP) instead of dropping it; `0` drops all."},
	{Section: "dns", Path: "dns.rate_limit.ipv4_prefix_len", Type: "int", Value: 24, Doc: "IPv4 clients are grouped by this prefix length (8–32)."},
	{Section: "dns", Path: "dns.rate_limit.ipv6_prefix_len", Type: "int", Value: 56, Doc: "IPv6 clients are grouped by this prefix length (16–128)."},
	{Section: "dns", Path: "dns.cookie_secret_file", Type: "path", Value: "", Credential: true, Doc: "DNS Cookies (RFC 7873) server secret file: one secret per line, 32 hex digits (`openssl rand -hex 16`); the first makes server cookies (RFC 9018), every line is accepted, so a secret rolls over without invalidating cookies. Give every node of the NS set the same file; a credential file (mode `0600`). `\"\"`: each node makes a random secret at start; see [operations](operations.md#dns-cookies) for what that costs. Read at start and on reload."},
	{Section: "dns", Path: "dns.udp_amplification_limit", Type: "int", Value: 4, Doc: "Over UDP without a valid server cookie, a reply larger than this many times the query is sent empty with TC set, so the client retries over TCP (a `_why` TXT or an `all` answer of many members). `0`: no cap; else 2–100."},
	{Section: "dns", Path: "dns.tcp.max_connections", Type: "int", Value: 1000, Restart: true, Doc: "TCP connections a node holds open at once; more are reset on accept, never queued."},
	{Section: "dns", Path: "dns.tcp.max_connections_per_source", Type: "int", Value: 20, Restart: true, Doc: "TCP connections one IPv4 address or IPv6 /64 may hold open; more are reset on accept. 1 to `max_connections`."},
	{Section: "dns", Path: "dns.tcp.read_timeout", Type: "duration", Value: "2s", Restart: true, Doc: "Time a new TCP connection has to send its first query."},
	{Section: "dns", Path: "dns.tcp.idle_timeout", Type: "duration", Value: "10s", Restart: true, Doc: "Time a TCP connection may wait between queries (RFC 7766 §6.2.3: seconds)."},
	{Section: "dns", Path: "dns.tcp.max_queries", Type: "int", Value: 100, Restart: true, Doc: "Queries answered on one TCP connection before the node closes it."},
}
