// Package benchenv holds what the benchmark programs under bench/ share:
// a Redis liveness check and a free-port allocator. It is not used by
// aagtm itself.
package benchenv

import (
	"bufio"
	"fmt"
	"net"
	"sync"
	"time"
)

// Ping reports whether a Redis server at addr answers PING within 300ms.
func Ping(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && line == "+PONG\r\n"
}

// usedPorts are the ports FreePort handed out: the kernel may offer a
// just-released port again, and two listeners of one deployment must not
// get the same one.
var usedPorts = struct {
	sync.Mutex
	m map[int]bool
}{m: map[int]bool{}}

// FreePort returns a TCP port that was free on host a moment ago and that
// it has not returned before.
func FreePort(host string) (int, error) {
	usedPorts.Lock()
	defer usedPorts.Unlock()
	for {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return 0, fmt.Errorf("find a free port on %s: %w", host, err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !usedPorts.m[port] {
			usedPorts.m[port] = true
			return port, nil
		}
	}
}
