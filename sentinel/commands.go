package sentinel

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// redisVersion is the Redis version HELLO and INFO report: the Redis 7.2
// Sentinel whose replies this package reproduces. Clients pick features
// by it; none needs more than 7.2 to discover a master.
const redisVersion = "7.2.0"

// Error texts, as Redis 7 sends them.
const (
	errNoSuchMaster = "ERR No such master with that name"
	errNoAuth       = "NOAUTH Authentication required."
	errHelloNoAuth  = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"
	errWrongPass    = "WRONGPASS invalid username-password pair or user is disabled."
	errNoPassword   = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
	errBadName      = "ERR Client names cannot contain spaces, newlines or special characters."
)

// dispatch runs one command and buffers its reply (c.mu is held). It
// returns true when the connection must close after the reply (QUIT).
func (c *conn) dispatch(args []string) (quit bool) {
	name := lower(args[0])
	if !c.authed && name != "auth" && name != "hello" && name != "quit" {
		c.out.error(errNoAuth)
		return false
	}
	// RESP2 subscribers may only (un)subscribe, ping and quit (Redis's
	// rule); RESP3 multiplexes replies and pushes on one connection.
	if !c.out.resp3 && c.subscriptions() > 0 {
		switch name {
		case "subscribe", "psubscribe", "unsubscribe", "punsubscribe", "ping", "quit":
		default:
			c.out.error(fmt.Sprintf("ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context", fullName(args)))
			return false
		}
	}
	switch name {
	case "ping":
		c.ping(args)
	case "quit":
		c.out.simple("OK")
		return true
	case "auth":
		c.auth(args)
	case "hello":
		c.hello(args)
	case "client":
		c.client(args)
	case "role":
		c.role(args)
	case "info":
		c.info(args)
	case "sentinel":
		c.sentinel(args)
	case "subscribe", "psubscribe":
		if len(args) < 2 {
			c.wrongArity(name)
			return false
		}
		c.subscribe(name, args[1:])
	case "unsubscribe", "punsubscribe":
		c.unsubscribe(name, args[1:])
	default:
		c.out.error(unknownCommand(args))
	}
	return false
}

// fullName is "cmd" or "cmd|sub" for a container command, as Redis names
// commands in errors.
func fullName(args []string) string {
	name := lower(args[0])
	if (name == "client" || name == "sentinel") && len(args) > 1 {
		return name + "|" + lower(args[1])
	}
	return name
}

// unknownCommand is Redis's text for a command it does not know, quoting
// the arguments up to 128 bytes.
func unknownCommand(args []string) string {
	var b strings.Builder
	name := args[0]
	if len(name) > 128 {
		name = name[:128]
	}
	fmt.Fprintf(&b, "ERR unknown command '%s', with args beginning with: ", name)
	budget := 128
	for _, a := range args[1:] {
		if budget <= 0 {
			break
		}
		if len(a) > budget {
			a = a[:budget]
		}
		budget -= len(a)
		fmt.Fprintf(&b, "'%s' ", a)
	}
	return sanitize(b.String())
}

// sanitize replaces CR and LF, which would end the error line early.
func sanitize(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}

func (c *conn) wrongArity(name string) {
	c.out.error(fmt.Sprintf("ERR wrong number of arguments for '%s' command", name))
}

func (c *conn) ping(args []string) {
	if len(args) > 2 {
		c.wrongArity("ping")
		return
	}
	// A RESP2 subscriber gets ["pong", msg]: a plain reply could not be
	// told from a message.
	if !c.out.resp3 && c.subscriptions() > 0 {
		c.out.array(2)
		c.out.bulk("pong")
		if len(args) == 2 {
			c.out.bulk(args[1])
		} else {
			c.out.bulk("")
		}
		return
	}
	if len(args) == 2 {
		c.out.bulk(args[1])
		return
	}
	c.out.simple("PONG")
}

// auth handles AUTH <password> and AUTH <user> <password>; the only user
// is "default".
func (c *conn) auth(args []string) {
	var user, pass string
	switch len(args) {
	case 2:
		user, pass = "default", args[1]
	case 3:
		user, pass = args[1], args[2]
	default:
		c.out.error("ERR syntax error")
		return
	}
	if c.s.opts.Password == "" && len(args) == 2 {
		c.out.error(errNoPassword)
		return
	}
	if !c.checkPassword(user, pass) {
		c.out.error(errWrongPass)
		return
	}
	c.authed = true
	c.out.simple("OK")
}

// checkPassword reports whether user and pass log in: user default, and
// the configured password (any password when none is configured).
func (c *conn) checkPassword(user, pass string) bool {
	if user != "default" {
		return false
	}
	return c.s.opts.Password == "" || pass == c.s.opts.Password
}

// hello handles HELLO [protover [AUTH user pass] [SETNAME name]]: it
// switches the protocol (2 or 3) and answers the server's properties.
func (c *conn) hello(args []string) {
	proto := 0
	if len(args) >= 2 {
		v, err := strconv.Atoi(args[1])
		if err != nil {
			c.out.error("ERR Protocol version is not an integer or out of range")
			return
		}
		if v < 2 || v > 3 {
			c.out.error("NOPROTO unsupported protocol version")
			return
		}
		proto = v
	}
	authed, setName := c.authed, ""
	hasName := false
	for i := 2; i < len(args); i++ {
		opt := lower(args[i])
		switch {
		case opt == "auth" && i+2 < len(args):
			if !c.checkPassword(args[i+1], args[i+2]) {
				c.out.error(errWrongPass)
				return
			}
			authed = true
			i += 2
		case opt == "setname" && i+1 < len(args):
			if !validClientName(args[i+1]) {
				c.out.error(errBadName)
				return
			}
			setName, hasName = args[i+1], true
			i++
		default:
			c.out.error(fmt.Sprintf("ERR Syntax error in HELLO option '%s'", sanitize(args[i])))
			return
		}
	}
	if !authed {
		c.out.error(errHelloNoAuth)
		return
	}
	c.authed = true
	if hasName {
		c.name = setName
	}
	if proto != 0 {
		c.out.resp3 = proto == 3
	}
	p := int64(2)
	if c.out.resp3 {
		p = 3
	}
	c.out.mapLen(6)
	c.out.bulk("server")
	c.out.bulk("redis")
	c.out.bulk("version")
	c.out.bulk(redisVersion)
	c.out.bulk("proto")
	c.out.int(p)
	c.out.bulk("id")
	c.out.int(c.id)
	c.out.bulk("mode")
	c.out.bulk("sentinel")
	c.out.bulk("modules")
	c.out.array(0)
}

// client handles CLIENT SETNAME|GETNAME|SETINFO|ID.
func (c *conn) client(args []string) {
	if len(args) < 2 {
		c.wrongArity("client")
		return
	}
	sub := lower(args[1])
	arity := map[string]int{"setname": 3, "getname": 2, "id": 2, "setinfo": 4}
	want, known := arity[sub]
	if !known {
		c.out.error(fmt.Sprintf("ERR unknown subcommand '%s'. Try CLIENT HELP.", sanitize(args[1])))
		return
	}
	if len(args) != want {
		c.wrongArity("client|" + sub)
		return
	}
	switch sub {
	case "setname":
		if !validClientName(args[2]) {
			c.out.error(errBadName)
			return
		}
		c.name = args[2]
		c.out.simple("OK")
	case "getname":
		if c.name == "" {
			c.out.nullBulk()
			return
		}
		c.out.bulk(c.name)
	case "id":
		c.out.int(c.id)
	case "setinfo":
		switch lower(args[2]) {
		case "lib-name", "lib-ver":
			c.out.simple("OK")
		default:
			c.out.error(fmt.Sprintf("ERR Unrecognized option '%s'", sanitize(args[2])))
		}
	}
}

// role answers ["sentinel", [database names]].
func (c *conn) role(args []string) {
	if len(args) != 1 {
		c.wrongArity("role")
		return
	}
	v := c.s.view.Load()
	c.out.array(2)
	c.out.bulk("sentinel")
	c.out.array(len(v.names))
	for _, n := range v.names {
		c.out.bulk(n)
	}
}

// info answers the server, clients and sentinel sections (all of them
// without an argument, or with all, everything or default).
func (c *conn) info(args []string) {
	v := c.s.view.Load()
	want := map[string]bool{}
	for _, a := range args[1:] {
		want[lower(a)] = true
	}
	all := len(want) == 0 || want["all"] || want["everything"] || want["default"]
	var b strings.Builder
	port := "0"
	if a := c.s.Addr(); a != nil {
		if i := strings.LastIndexByte(a.String(), ':'); i >= 0 {
			port = a.String()[i+1:]
		}
	}
	if all || want["server"] {
		fmt.Fprintf(&b, "# Server\r\nredis_version:%s\r\nredis_mode:sentinel\r\nrun_id:%s\r\ntcp_port:%s\r\nuptime_in_seconds:%d\r\n",
			redisVersion, c.s.runID, port, int64(time.Since(c.s.started).Seconds()))
	}
	if all || want["clients"] {
		c.s.mu.Lock()
		conns, subs := len(c.s.conns), len(c.s.subs)
		c.s.mu.Unlock()
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		fmt.Fprintf(&b, "# Clients\r\nconnected_clients:%d\r\npubsub_clients:%d\r\n", conns, subs)
	}
	if all || want["sentinel"] {
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		fmt.Fprintf(&b, "# Sentinel\r\nsentinel_masters:%d\r\nsentinel_tilt:0\r\nsentinel_running_scripts:0\r\nsentinel_scripts_queue_length:0\r\nsentinel_simulate_failure_flags:0\r\n", len(v.names))
		region := v.regionOf(c.remote)
		for i, n := range v.names {
			m, _ := v.lookup(n, region)
			status, addr := "ok", hostPort(m)
			if !m.valid() {
				status = "odown"
			}
			fmt.Fprintf(&b, "master%d:name=%s,status=%s,address=%s,slaves=0,sentinels=%d\r\n", i, n, status, addr, len(v.peers)+1)
		}
	}
	c.out.verbatim(b.String())
}

// hostPort is m's address as host:port (INFO).
func hostPort(m master) string {
	if !m.valid() {
		return ":0"
	}
	return net.JoinHostPort(m.host, m.port)
}

// sentinel handles the SENTINEL subcommands clients use to discover.
func (c *conn) sentinel(args []string) {
	if len(args) < 2 {
		c.wrongArity("sentinel")
		return
	}
	sub := lower(args[1])
	arity := map[string]int{
		"get-master-addr-by-name": 3, "master": 3, "masters": 2, "sentinels": 3,
		"replicas": 3, "slaves": 3, "ckquorum": 3, "myid": 2,
	}
	want, known := arity[sub]
	if !known {
		c.out.error(fmt.Sprintf("ERR unknown subcommand '%s'. Try SENTINEL HELP.", sanitize(args[1])))
		return
	}
	if len(args) != want {
		c.wrongArity("sentinel|" + sub)
		return
	}
	v := c.s.view.Load()
	region := v.regionOf(c.remote)
	if sub == "masters" {
		c.out.array(len(v.names))
		for _, n := range v.names {
			m, _ := v.lookup(n, region)
			c.out.bulkMap(c.masterFields(v, n, m))
		}
		return
	}
	if sub == "myid" {
		c.out.bulk(c.s.runID)
		return
	}
	m, ok := v.lookup(args[2], region)
	if !ok {
		if sub == "get-master-addr-by-name" {
			c.out.nullArray()
			return
		}
		c.out.error(errNoSuchMaster)
		return
	}
	switch sub {
	case "get-master-addr-by-name":
		if !m.valid() {
			c.out.nullArray()
			return
		}
		c.out.array(2)
		c.out.bulk(m.host)
		c.out.bulk(m.port)
	case "master":
		c.out.bulkMap(c.masterFields(v, args[2], m))
	case "sentinels":
		c.out.array(len(v.peers))
		for _, p := range v.peers {
			c.out.bulkMap(peerFields(p))
		}
	case "replicas", "slaves":
		// Never the other Active-Active members: StackExchange.Redis
		// would add them as endpoints, and every member is a master.
		c.out.array(0)
	case "ckquorum":
		c.out.simple(fmt.Sprintf("OK %d usable Sentinels. Quorum and failover authorization can be reached", len(v.peers)+1))
	}
}

// masterFields is the SENTINEL MASTER map of database name with master
// m, in Redis's field order, every value a string. A database with no
// master now is reported s_down and o_down (no client uses it).
func (c *conn) masterFields(v *view, name string, m master) []string {
	flags := "master"
	if !m.valid() {
		flags = "master,s_down,o_down"
	}
	runid := ""
	if m.member != "" {
		runid = memberRunID(m.member)
	}
	return []string{
		"name", name,
		"ip", m.host,
		"port", orZero(m.port),
		"runid", runid,
		"flags", flags,
		"link-pending-commands", "0",
		"link-refcount", "1",
		"last-ping-sent", "0",
		"last-ok-ping-reply", "0",
		"last-ping-reply", "0",
		"down-after-milliseconds", v.downAfter,
		"info-refresh", "0",
		"role-reported", "master",
		"role-reported-time", "0",
		"config-epoch", strconv.FormatUint(v.serial, 10),
		"num-slaves", "0",
		"num-other-sentinels", strconv.Itoa(len(v.peers)),
		"quorum", "1",
		"failover-timeout", "0",
		"parallel-syncs", "0",
	}
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

// peerFields is one SENTINEL SENTINELS entry.
func peerFields(p peer) []string {
	return []string{
		"name", nodeRunID(p.name),
		"ip", p.host,
		"port", p.port,
		"runid", nodeRunID(p.name),
		"flags", "sentinel",
		"link-pending-commands", "0",
		"link-refcount", "1",
		"last-ping-sent", "0",
		"last-ok-ping-reply", "0",
		"last-ping-reply", "0",
		"down-after-milliseconds", "0",
		"last-hello-message", "0",
		"voted-leader", "?",
		"voted-leader-epoch", "0",
	}
}
