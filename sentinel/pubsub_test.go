package sentinel

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

func TestGlobMatch(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "+switch-master", true},
		{"*", "", true},
		{"+switch-master", "+switch-master", true},
		{"switch-master", "+switch-master", false}, // node-redis's literal never matches
		{"*switch-master", "+switch-master", true},
		{"[-+]sdown", "+sdown", true},
		{"[-+]sdown", "-sdown", true},
		{"[-+]sdown", "+odown", false},
		{"+s?own", "+sdown", true},
		{"+s?own", "+sdrown", false},
		{"[^+]sdown", "+sdown", false},
		{"[^+]sdown", "-sdown", true},
		{"[a-c]x", "bx", true},
		{"[c-a]x", "bx", true}, // reversed range, as Redis accepts
		{"[a-c]x", "dx", false},
		{`\*`, "*", true},
		{`\*`, "a", false},
		{`[\]]`, "]", true},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"**", "anything", true},
		{"[abc", "b", true}, // unterminated set: to the end, as Redis
		{"h?llo*", "hello world", true},
		{"", "", true},
		{"", "x", false},
	}
	for _, tc := range cases {
		t.Run(tc.pattern+"~"+tc.s, func(t *testing.T) {
			if got := globMatch(tc.pattern, tc.s); got != tc.want {
				t.Errorf("globMatch(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
			}
		})
	}
}

// TestSwitchPublished checks what subscribers get when the master of their
// region changes, in both protocols, and that the new answer is served by
// the time the message arrives.
func TestSwitchPublished(t *testing.T) {
	for _, resp3 := range []bool{false, true} {
		t.Run(fmt.Sprintf("resp3=%v", resp3), func(t *testing.T) {
			s := startServer(t, Options{})
			push := "*"
			if resp3 {
				push = ">"
			}
			sub := dial(t, s)
			if resp3 {
				sub.do("HELLO", "3")
			}
			if got, want := sub.do("SUBSCRIBE", "+switch-master"), push+"3\r\n"+bulks("subscribe", "+switch-master")+":1\r\n"; got != want {
				t.Fatalf("SUBSCRIBE = %q, want %q", got, want)
			}
			sub.send(encode("PSUBSCRIBE", "[-+]sdown", "switch-master"))
			for i, p := range []string{"[-+]sdown", "switch-master"} {
				if got, want := sub.read(), push+"3\r\n"+bulks("psubscribe", p)+fmt.Sprintf(":%d\r\n", i+2); got != want {
					t.Fatalf("PSUBSCRIBE = %q, want %q", got, want)
				}
			}
			// Subscribers of eu-west (this client) get the plain name
			// and the explicit one; the us-east answer does not move.
			s.Update(testConfig(), testSnapshot(2, "cache-use", "cache-use"))
			want := []string{
				push + "4\r\n" + bulks("pmessage", "[-+]sdown", "+sdown", "master cache 10.2.0.10 12000"),
				push + "3\r\n" + bulks("message", "+switch-master", "cache 10.2.0.10 12000 10.1.0.10 12001"),
				push + "4\r\n" + bulks("pmessage", "[-+]sdown", "-sdown", "master cache 10.1.0.10 12001"),
				push + "4\r\n" + bulks("pmessage", "[-+]sdown", "+sdown", "master cache@eu-west 10.2.0.10 12000"),
				push + "3\r\n" + bulks("message", "+switch-master", "cache@eu-west 10.2.0.10 12000 10.1.0.10 12001"),
				push + "4\r\n" + bulks("pmessage", "[-+]sdown", "-sdown", "master cache@eu-west 10.1.0.10 12001"),
			}
			for i, w := range want {
				if got := sub.read(); got != w {
					t.Errorf("message %d:\n got %q\nwant %q", i, got, w)
				}
			}
			if got := dial(t, s).do("SENTINEL", "get-master-addr-by-name", "cache"); got != "*2\r\n"+bulks("10.1.0.10", "12001") {
				t.Errorf("after the switch, GET-MASTER-ADDR-BY-NAME = %q", got)
			}
			// A subscriber pings: RESP2 gets ["pong", ""], RESP3 +PONG.
			wantPong := "*2\r\n" + bulks("pong", "")
			if resp3 {
				wantPong = "+PONG\r\n"
			}
			if got := sub.do("PING"); got != wantPong {
				t.Errorf("subscribed PING = %q, want %q", got, wantPong)
			}
			// RESP2 subscribers may not run other commands; RESP3 may.
			got := sub.do("SENTINEL", "myid")
			if resp3 != strings.HasPrefix(got, "$40") {
				t.Errorf("subscribed SENTINEL MYID (resp3=%v) = %q", resp3, got)
			}
			if !resp3 && got != "-ERR Can't execute 'sentinel|myid': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n" {
				t.Errorf("subscribed RESP2 command error = %q", got)
			}
			sub.send(encode("UNSUBSCRIBE"))
			if got, want := sub.read(), push+"3\r\n"+bulks("unsubscribe", "+switch-master")+":2\r\n"; got != want {
				t.Errorf("UNSUBSCRIBE = %q, want %q", got, want)
			}
		})
	}
}

// TestSwitchOtherRegion checks that a subscriber outside the switched
// region gets only the explicit "<db>@<region>" name, and that no message
// is sent when nothing moved.
func TestSwitchOtherRegion(t *testing.T) {
	s := startServer(t, Options{})
	sub := dial(t, s)
	sub.do("SUBSCRIBE", "+switch-master")
	s.Update(testConfig(), testSnapshot(2, "cache-euw", "cache-use")) // unchanged
	s.Update(testConfig(), testSnapshot(3, "cache-euw", "cache-euw")) // us-east moves
	want := "*3\r\n" + bulks("message", "+switch-master", "cache@us-east 10.1.0.10 12001 10.2.0.10 12000")
	if got := sub.read(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestPipelining sends several commands in one write, and gets every
// reply in order.
func TestPipelining(t *testing.T) {
	s := startServer(t, Options{})
	c := dial(t, s)
	c.send(encode("PING") + encode("CLIENT", "SETNAME", "p") + "PING inline\r\n" + encode("CLIENT", "GETNAME") +
		encode("SENTINEL", "get-master-addr-by-name", "cache") + encode("NOPE"))
	for _, want := range []string{"+PONG\r\n", "+OK\r\n", "$6\r\ninline\r\n", "$1\r\np\r\n", "*2\r\n" + bulks("10.2.0.10", "12000"),
		"-ERR unknown command 'NOPE', with args beginning with: \r\n"} {
		if got := c.read(); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

// TestBadInput checks that malformed and oversized input gets Redis's
// protocol error, the connection is closed, and the server still serves.
func TestBadInput(t *testing.T) {
	cases := []struct {
		name, raw, want string
	}{
		{"bad multibulk length", "*abc\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		{"too many arguments", fmt.Sprintf("*%d\r\n", maxArgs+1), "-ERR Protocol error: invalid multibulk length\r\n"},
		{"negative bulk", "*1\r\n$-5\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		{"oversized bulk", fmt.Sprintf("*1\r\n$%d\r\n", maxBulk+1), "-ERR Protocol error: invalid bulk length\r\n"},
		{"not a bulk", "*1\r\nfoo\r\n", "-ERR Protocol error: expected '$', got 'f'\r\n"},
		{"bulk without CRLF", "*1\r\n$3\r\nfooXY", "-ERR Protocol error: invalid bulk format\r\n"},
		{"unbalanced quotes", "PING \"abc\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
		{"oversized inline", strings.Repeat("x", maxInline+10) + "\r\n", "-ERR Protocol error: too big inline request\r\n"},
	}
	s := startServer(t, Options{})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, s)
			c.send(tc.raw)
			if got := c.read(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			_ = c.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
			if n, err := c.rd.ReadByte(); err == nil {
				t.Errorf("connection still open after a protocol error (read %q)", n)
			}
			if got := dial(t, s).do("PING"); got != "+PONG\r\n" {
				t.Errorf("server unwell after bad input: PING = %q", got)
			}
		})
	}
}

// TestIdleSubscribers holds 5,000 idle subscribers and publishes one
// switch to all of them: none is timed out, every one gets it.
func TestIdleSubscribers(t *testing.T) {
	if testing.Short() {
		t.Skip("5,000 connections")
	}
	const n = 5000
	s := startServer(t, Options{})
	subs := make([]*client, 0, n)
	for i := range n {
		c := dial(t, s)
		c.send(encode("SUBSCRIBE", "+switch-master"))
		subs = append(subs, c)
		if i%500 == 499 { // read confirmations as we go, bounding buffers
			for _, c := range subs[i-499 : i+1] {
				c.read()
			}
		}
	}
	time.Sleep(time.Second) // idle
	s.Update(testConfig(), testSnapshot(2, "cache-use", "cache-use"))
	want := "*3\r\n" + bulks("message", "+switch-master", "cache 10.2.0.10 12000 10.1.0.10 12001")
	for i, c := range subs {
		if got := c.read(); got != want {
			t.Fatalf("subscriber %d got %q, want %q", i, got, want)
		}
	}
}

// TestQuit answers OK and closes.
func TestQuit(t *testing.T) {
	s := startServer(t, Options{})
	c := dial(t, s)
	if got := c.do("QUIT"); got != "+OK\r\n" {
		t.Fatalf("QUIT = %q", got)
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.rd.ReadByte(); err == nil {
		t.Error("connection open after QUIT")
	}
	var _ net.Conn = c.nc
}
