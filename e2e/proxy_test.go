package e2e

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tcpProxy forwards TCP connections from a loopback listener to one peer (a
// member's Redis port or a node's report port), so that a test can cut one
// path of the deployment without touching the processes at either end.
//
// Delay makes the peer slow: every byte it sends is passed on only after
// the delay, steadily, so each request/reply round trip through the proxy
// takes that much longer.
//
// Blackhole makes the path a partition that neither end can tell from a
// hung peer: connections are still accepted and stay open, but every byte
// in either direction vanishes, so calls time out rather than fail fast.
// Heal forwards again and closes the connections that lost bytes (their
// streams are corrupt), as a middlebox that lost its state would; both
// ends then reconnect.
type tcpProxy struct {
	ln     net.Listener
	target string

	mu        sync.Mutex
	blackhole bool
	delay     time.Duration // of bytes from the target
	closed    bool
	links     map[*proxyLink]struct{}
	wg        sync.WaitGroup
}

// proxyLink is one proxied connection.
type proxyLink struct {
	mu       sync.Mutex
	client   net.Conn
	upstream net.Conn // nil until dialled; never dialled while blackholed
	lost     atomic.Bool
}

func (l *proxyLink) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.client.Close()
	if l.upstream != nil {
		l.upstream.Close()
	}
}

// startProxy listens on a free 127.0.0.1 port and forwards to target. It
// is closed, with every connection, in t.Cleanup. The port comes from
// freeTCPPort, not the kernel (":0"), which could hand out a port already
// given to a node of the test that has not bound it yet.
func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	var ln net.Listener
	var err error
	for range 10 { // another process may take the port first
		if ln, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t))); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("proxy to %s: listen: %v", target, err)
	}
	p := &tcpProxy{ln: ln, target: target, links: map[*proxyLink]struct{}{}}
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(p.close)
	return p
}

// Addr returns the address clients dial instead of the target.
func (p *tcpProxy) Addr() string { return p.ln.Addr().String() }

// Blackhole starts dropping every byte, on open and new connections.
func (p *tcpProxy) Blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blackhole = true
}

// Heal forwards again and closes the connections that lost bytes.
func (p *tcpProxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blackhole = false
	for l := range p.links {
		if l.lost.Load() {
			l.close()
		}
	}
}

// Delay holds every byte from the target for d before passing it on; 0
// forwards at once again.
func (p *tcpProxy) Delay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
}

func (p *tcpProxy) replyDelay() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delay
}

func (p *tcpProxy) holed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.blackhole
}

// close stops listening, closes every connection and waits for the
// proxy's goroutines.
func (p *tcpProxy) close() {
	p.mu.Lock()
	p.closed = true
	p.ln.Close()
	for l := range p.links {
		l.close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *tcpProxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // listener closed
		}
		l := &proxyLink{client: c}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return
		}
		p.links[l] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(l)
	}
}

// serve forwards one connection until either side closes it.
func (p *tcpProxy) serve(l *proxyLink) {
	defer p.wg.Done()
	defer func() {
		l.close()
		p.mu.Lock()
		delete(p.links, l)
		p.mu.Unlock()
	}()
	if p.holed() {
		// Accepted into the void: read and drop until Heal or close.
		l.lost.Store(true)
		_, _ = io.Copy(io.Discard, l.client)
		return
	}
	up, err := net.DialTimeout("tcp", p.target, time.Second)
	if err != nil {
		return // peer down: the client sees its connection closed
	}
	l.mu.Lock()
	l.upstream = up
	l.mu.Unlock()
	var pipes sync.WaitGroup
	pipes.Add(1)
	go func() {
		defer pipes.Done()
		p.pipe(l, up, l.client, nil)
	}()
	p.pipe(l, l.client, up, p.replyDelay)
	pipes.Wait()
}

// pipe copies src to dst, dropping what it reads while blackholed and
// holding each chunk for delay() (when not nil) after it was read; the first
// error on either side closes both.
func (p *tcpProxy) pipe(l *proxyLink, dst, src net.Conn, delay func() time.Duration) {
	type chunk struct {
		b   []byte
		due time.Time
	}
	chunks := make(chan chunk, 256)
	written := make(chan struct{})
	go func() { // the writer: keeps draining after an error so reads never block
		defer close(written)
		failed := false
		for c := range chunks {
			if failed {
				continue
			}
			time.Sleep(time.Until(c.due))
			if _, err := dst.Write(c.b); err != nil {
				failed = true
				l.close()
			}
		}
	}()
	defer func() {
		close(chunks)
		<-written
		l.close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if p.holed() {
				l.lost.Store(true)
			} else {
				c := chunk{b: append([]byte(nil), buf[:n]...), due: time.Now()}
				if delay != nil {
					c.due = c.due.Add(delay())
				}
				chunks <- c
			}
		}
		if err != nil {
			return
		}
	}
}
