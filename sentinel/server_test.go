package sentinel

import (
	"fmt"
	"strings"
	"testing"
)

// cacheMaster is SENTINEL MASTER cache for a client in eu-west, as the
// key/value strings Redis sends (every value a bulk string).
var cacheMaster = []string{
	"name", "cache", "ip", "10.2.0.10", "port", "12000",
	"runid", memberRunID("cache-euw"), "flags", "master",
	"link-pending-commands", "0", "link-refcount", "1", "last-ping-sent", "0",
	"last-ok-ping-reply", "0", "last-ping-reply", "0", "down-after-milliseconds", "500",
	"info-refresh", "0", "role-reported", "master", "role-reported-time", "0",
	"config-epoch", "1", "num-slaves", "0", "num-other-sentinels", "1",
	"quorum", "1", "failover-timeout", "0", "parallel-syncs", "0",
}

func asMap(resp3 bool, kv []string) string {
	if resp3 {
		return fmt.Sprintf("%%%d\r\n", len(kv)/2) + bulks(kv...)
	}
	return fmt.Sprintf("*%d\r\n", len(kv)) + bulks(kv...)
}

// TestCommands checks every command's reply, byte for byte, in RESP2 and
// after HELLO 3 in RESP3 (want3 empty: the same bytes).
func TestCommands(t *testing.T) {
	ns2 := []string{"name", nodeRunID("ns2"), "ip", "192.0.2.22", "port", "26380", "runid", nodeRunID("ns2"), "flags", "sentinel",
		"link-pending-commands", "0", "link-refcount", "1", "last-ping-sent", "0", "last-ok-ping-reply", "0", "last-ping-reply", "0",
		"down-after-milliseconds", "0", "last-hello-message", "0", "voted-leader", "?", "voted-leader-epoch", "0"}
	cacheUSE := append([]string(nil), cacheMaster...)
	cacheUSE[1], cacheUSE[3], cacheUSE[5], cacheUSE[7] = "cache@us-east", "10.1.0.10", "12001", memberRunID("cache-use")
	cloud := append([]string(nil), cacheMaster...)
	cloud[1], cloud[3], cloud[5], cloud[7] = "cloud", "redis-1.cloud.example.net", "6379", memberRunID("cloud-1")
	pending := append([]string(nil), cacheMaster...)
	pending[1], pending[3], pending[5], pending[7], pending[9] = "pending", "", "0", "", "master,s_down,o_down"
	masters := func(resp3 bool) string {
		cl := append([]string(nil), cloud...)
		return "*3\r\n" + asMap(resp3, cacheMaster) + asMap(resp3, cl) + asMap(resp3, pending)
	}
	cases := []struct {
		name         string
		args         []string
		want2, want3 string
	}{
		{"ping", []string{"PING"}, "+PONG\r\n", ""},
		{"ping message", []string{"ping", "hi"}, "$2\r\nhi\r\n", ""},
		{"ping arity", []string{"PING", "a", "b"}, "-ERR wrong number of arguments for 'ping' command\r\n", ""},
		{"get-master-addr-by-name", []string{"SENTINEL", "get-master-addr-by-name", "cache"}, "*2\r\n" + bulks("10.2.0.10", "12000"), ""},
		{"get-master-addr upper case", []string{"sentinel", "GET-MASTER-ADDR-BY-NAME", "cache"}, "*2\r\n" + bulks("10.2.0.10", "12000"), ""},
		{"explicit region", []string{"SENTINEL", "get-master-addr-by-name", "cache@us-east"}, "*2\r\n" + bulks("10.1.0.10", "12001"), ""},
		{"cname member", []string{"SENTINEL", "get-master-addr-by-name", "cloud"}, "*2\r\n" + bulks("redis-1.cloud.example.net", "6379"), ""},
		{"unknown name", []string{"SENTINEL", "get-master-addr-by-name", "nope"}, "*-1\r\n", "_\r\n"},
		{"unknown region", []string{"SENTINEL", "get-master-addr-by-name", "cache@mars"}, "*-1\r\n", "_\r\n"},
		{"no answer yet", []string{"SENTINEL", "get-master-addr-by-name", "pending"}, "*-1\r\n", "_\r\n"},
		{"get-master arity", []string{"SENTINEL", "get-master-addr-by-name"}, "-ERR wrong number of arguments for 'sentinel|get-master-addr-by-name' command\r\n", ""},
		{"master", []string{"SENTINEL", "master", "cache"}, asMap(false, cacheMaster), asMap(true, cacheMaster)},
		{"master explicit region", []string{"SENTINEL", "MASTER", "cache@us-east"}, asMap(false, cacheUSE), asMap(true, cacheUSE)},
		{"master unknown", []string{"SENTINEL", "master", "nope"}, "-ERR No such master with that name\r\n", ""},
		{"masters", []string{"SENTINEL", "masters"}, masters(false), masters(true)},
		{"sentinels", []string{"SENTINEL", "sentinels", "cache"}, "*1\r\n" + asMap(false, ns2), "*1\r\n" + asMap(true, ns2)},
		{"sentinels unknown", []string{"SENTINEL", "sentinels", "nope"}, "-ERR No such master with that name\r\n", ""},
		{"replicas", []string{"SENTINEL", "replicas", "cache"}, "*0\r\n", ""},
		{"slaves", []string{"SENTINEL", "slaves", "cache"}, "*0\r\n", ""},
		{"replicas unknown", []string{"SENTINEL", "replicas", "nope"}, "-ERR No such master with that name\r\n", ""},
		{"ckquorum", []string{"SENTINEL", "ckquorum", "cache"}, "+OK 2 usable Sentinels. Quorum and failover authorization can be reached\r\n", ""},
		{"ckquorum unknown", []string{"SENTINEL", "ckquorum", "nope"}, "-ERR No such master with that name\r\n", ""},
		{"myid", []string{"SENTINEL", "myid"}, "$40\r\n" + nodeRunID("ns1") + "\r\n", ""},
		{"sentinel unknown sub", []string{"SENTINEL", "failover", "cache"}, "-ERR unknown subcommand 'failover'. Try SENTINEL HELP.\r\n", ""},
		{"sentinel arity", []string{"SENTINEL"}, "-ERR wrong number of arguments for 'sentinel' command\r\n", ""},
		{"role", []string{"ROLE"}, "*2\r\n$8\r\nsentinel\r\n*3\r\n" + bulks("cache", "cloud", "pending"), ""},
		{"client setname", []string{"CLIENT", "SETNAME", "app"}, "+OK\r\n", ""},
		{"client setname bad", []string{"CLIENT", "SETNAME", "a b"}, "-ERR Client names cannot contain spaces, newlines or special characters.\r\n", ""},
		{"client setname arity", []string{"CLIENT", "SETNAME"}, "-ERR wrong number of arguments for 'client|setname' command\r\n", ""},
		{"client getname unset", []string{"CLIENT", "GETNAME"}, "$-1\r\n", "_\r\n"},
		{"client setinfo", []string{"CLIENT", "SETINFO", "lib-name", "go-redis"}, "+OK\r\n", ""},
		{"client setinfo bad", []string{"CLIENT", "SETINFO", "color", "red"}, "-ERR Unrecognized option 'color'\r\n", ""},
		{"client unknown", []string{"CLIENT", "KILL", "x"}, "-ERR unknown subcommand 'KILL'. Try CLIENT HELP.\r\n", ""},
		{"client arity", []string{"CLIENT"}, "-ERR wrong number of arguments for 'client' command\r\n", ""},
		{"auth without password", []string{"AUTH", "secret"}, "-" + errNoPassword + "\r\n", ""},
		{"auth default user", []string{"AUTH", "default", "anything"}, "+OK\r\n", ""},
		{"auth other user", []string{"AUTH", "bob", "x"}, "-WRONGPASS invalid username-password pair or user is disabled.\r\n", ""},
		{"hello bad version", []string{"HELLO", "4"}, "-NOPROTO unsupported protocol version\r\n", ""},
		{"hello not a number", []string{"HELLO", "x"}, "-ERR Protocol version is not an integer or out of range\r\n", ""},
		{"hello bad option", []string{"HELLO", "3", "BLAH"}, "-ERR Syntax error in HELLO option 'BLAH'\r\n", ""},
		{"unknown command", []string{"GET", "x"}, "-ERR unknown command 'GET', with args beginning with: 'x' \r\n", ""},
		{"unknown no args", []string{"FLUSHALL"}, "-ERR unknown command 'FLUSHALL', with args beginning with: \r\n", ""},
		{"subscribe arity", []string{"SUBSCRIBE"}, "-ERR wrong number of arguments for 'subscribe' command\r\n", ""},
		{"unsubscribe none", []string{"UNSUBSCRIBE"}, "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n", ">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n"},
		{"punsubscribe none", []string{"PUNSUBSCRIBE"}, "*3\r\n$12\r\npunsubscribe\r\n$-1\r\n:0\r\n", ">3\r\n$12\r\npunsubscribe\r\n_\r\n:0\r\n"},
	}
	s := startServer(t, Options{})
	for _, resp3 := range []bool{false, true} {
		for _, tc := range cases {
			proto := "RESP2"
			if resp3 {
				proto = "RESP3"
			}
			t.Run(proto+"/"+tc.name, func(t *testing.T) {
				c := dial(t, s)
				want := tc.want2
				if resp3 {
					c.do("HELLO", "3")
					if tc.want3 != "" {
						want = tc.want3
					}
				}
				if got := c.do(tc.args...); got != want {
					t.Errorf("%q:\n got %q\nwant %q", tc.args, got, want)
				}
			})
		}
	}
}

// TestHello checks HELLO's map in both protocols, with AUTH and SETNAME.
func TestHello(t *testing.T) {
	s := startServer(t, Options{})
	c := dial(t, s)
	id := strings.TrimSuffix(strings.TrimPrefix(c.do("CLIENT", "ID"), ":"), "\r\n")
	hello := func(open, proto string) string {
		return open + bulks("server", "redis", "version", redisVersion, "proto") + ":" + proto + "\r\n" +
			bulks("id") + ":" + id + "\r\n" + bulks("mode", "sentinel", "modules") + "*0\r\n"
	}
	if got, want := c.do("HELLO"), hello("*12\r\n", "2"); got != want {
		t.Errorf("HELLO:\n got %q\nwant %q", got, want)
	}
	if got, want := c.do("HELLO", "3", "AUTH", "default", "x", "SETNAME", "svc"), hello("%6\r\n", "3"); got != want {
		t.Errorf("HELLO 3 AUTH SETNAME:\n got %q\nwant %q", got, want)
	}
	if got := c.do("CLIENT", "GETNAME"); got != "$3\r\nsvc\r\n" {
		t.Errorf("CLIENT GETNAME after HELLO SETNAME = %q", got)
	}
	if got, want := c.do("HELLO", "2"), hello("*12\r\n", "2"); got != want {
		t.Errorf("HELLO 2 back:\n got %q\nwant %q", got, want)
	}
}

// TestPassword checks that a configured password gates every command
// but AUTH, HELLO and QUIT, and is accepted in each form clients send.
func TestPassword(t *testing.T) {
	s := startServer(t, Options{Password: "s3cret"})
	cases := []struct {
		name  string
		login []string
		want  string
	}{
		{"no login", nil, "-NOAUTH Authentication required.\r\n"},
		{"auth password", []string{"AUTH", "s3cret"}, "+OK\r\n"},
		{"auth default user", []string{"AUTH", "default", "s3cret"}, "+OK\r\n"},
		{"auth wrong", []string{"AUTH", "nope"}, "-WRONGPASS invalid username-password pair or user is disabled.\r\n"},
		{"auth other user", []string{"AUTH", "admin", "s3cret"}, "-WRONGPASS invalid username-password pair or user is disabled.\r\n"},
		{"hello without auth", []string{"HELLO", "3"}, "-" + errHelloNoAuth + "\r\n"},
		{"hello wrong", []string{"HELLO", "3", "AUTH", "default", "nope"}, "-WRONGPASS invalid username-password pair or user is disabled.\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, s)
			if tc.login != nil {
				if got := c.do(tc.login...); got != tc.want {
					t.Fatalf("%q = %q, want %q", tc.login, got, tc.want)
				}
			}
			want := "+PONG\r\n"
			if !strings.HasPrefix(tc.want, "+") {
				want = "-NOAUTH Authentication required.\r\n"
			}
			if got := c.do("PING"); got != want {
				t.Errorf("PING after login = %q, want %q", got, want)
			}
		})
	}
	t.Run("hello auth", func(t *testing.T) {
		c := dial(t, s)
		if got := c.do("HELLO", "3", "AUTH", "default", "s3cret"); !strings.HasPrefix(got, "%6\r\n") {
			t.Fatalf("HELLO 3 AUTH = %q", got)
		}
		if got := c.do("SENTINEL", "get-master-addr-by-name", "cache"); got != "*2\r\n"+bulks("10.2.0.10", "12000") {
			t.Errorf("after HELLO AUTH: %q", got)
		}
	})
}

// TestInfo checks INFO's sections and the fields clients read.
func TestInfo(t *testing.T) {
	s := startServer(t, Options{})
	c := dial(t, s)
	info := c.do("INFO")
	for _, want := range []string{"# Server\r\n", "redis_mode:sentinel\r\n", "redis_version:" + redisVersion + "\r\n",
		"# Sentinel\r\n", "sentinel_masters:3\r\n", "master0:name=cache,status=ok,address=10.2.0.10:12000,slaves=0,sentinels=2\r\n",
		"master2:name=pending,status=odown,address=:0,slaves=0,sentinels=2\r\n"} {
		if !strings.Contains(info, want) {
			t.Errorf("INFO lacks %q:\n%s", want, info)
		}
	}
	if server := c.do("INFO", "server"); strings.Contains(server, "# Sentinel") || !strings.Contains(server, "redis_mode:sentinel") {
		t.Errorf("INFO server:\n%s", server)
	}
	c.do("HELLO", "3")
	if v := c.do("INFO", "sentinel"); !strings.HasPrefix(v, "=") || !strings.Contains(v, "txt:# Sentinel\r\n") {
		t.Errorf("RESP3 INFO is not a verbatim txt string: %q", v)
	}
}
