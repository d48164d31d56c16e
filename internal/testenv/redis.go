// Package testenv starts real redis-server processes for tests (and makes
// throwaway certificate authorities, NewCA): a single
// server (optionally bound to another loopback address, with a password, or
// cluster-enabled) and a small OSS cluster, each on free ports, killed and
// reaped when the test ends.
//
// It is for tests only and imports nothing of aagtm. It talks to the servers
// with a tiny RESP client of its own (Do), so it does not depend on a Redis
// client library. When redis-server (or a program a test asks for with
// RequireTool) is not on PATH, tests are skipped, or failed when the
// environment variable CI is "true", as .ci/run sets it.
//
// Typical use:
//
//	r := testenv.StartRedis(t)                          // 127.0.0.1, free port
//	s := testenv.StartRedis(t, testenv.WithBind("127.0.0.11"), testenv.WithPassword("pw"))
//	client := redis.NewClient(&redis.Options{Addr: r.Addr()}) // or redis.ParseURL(s.URL())
//	r.Stop(); r.Cont()  // SIGSTOP / SIGCONT: a hung server
//	r.Kill(); r.Restart() // down, then up again on the same port
//	c := testenv.StartCluster(t, 3) // OSS cluster, slots split evenly
//
// Servers run with --save "" --appendonly no in a per-server temporary
// directory; extra redis-server arguments go through WithArgs or Restart.
package testenv

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long a redis-server may take to answer its first
// PING.
const startTimeout = 10 * time.Second

// Option configures StartRedis.
type Option func(*options)

type options struct {
	bind     string
	password string
	cluster  bool
	args     []string
}

// WithBind binds the server to host (an IP address such as 127.0.0.11;
// any 127.0.0.0/8 address is loopback on Linux) instead of 127.0.0.1.
func WithBind(host string) Option { return func(o *options) { o.bind = host } }

// WithPassword starts the server with requirepass set to password; URL and
// Do then authenticate with it.
func WithPassword(password string) Option { return func(o *options) { o.password = password } }

// WithCluster starts the server with --cluster-enabled yes (and a cluster
// bus port of its own). StartCluster uses it; alone it gives a node with no
// slots.
func WithCluster() Option { return func(o *options) { o.cluster = true } }

// WithArgs appends raw redis-server arguments, e.g. WithArgs("--maxmemory",
// "10mb").
func WithArgs(args ...string) Option {
	return func(o *options) { o.args = append(o.args, args...) }
}

// Redis is one redis-server process owned by a test.
type Redis struct {
	t       testing.TB
	opts    options
	port    int
	busPort int
	dir     string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been reaped
	out  *LockedBuffer
}

// RequireTool returns the path of the program name. When it is not on
// PATH it fails the test if the environment variable CI is "true" (so that
// CI, which sets it, cannot pass by skipping) and skips the test otherwise;
// the message names the Debian package debPkg that provides it.
func RequireTool(t testing.TB, name, debPkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("%s not found on PATH; install it (apt-get install %s) or run `make test`, which does", name, debPkg)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// RequireRedisServer returns the path of redis-server, as RequireTool.
func RequireRedisServer(t testing.TB) string {
	t.Helper()
	return RequireTool(t, "redis-server", "redis-server")
}

// StartRedis starts a redis-server on a free port with --save "" and
// --appendonly no, in a temporary directory, and returns once it answers
// PING. The server is killed and reaped in t.Cleanup.
func StartRedis(t testing.TB, opts ...Option) *Redis {
	t.Helper()
	RequireRedisServer(t)
	r := &Redis{t: t, opts: options{bind: "127.0.0.1"}, dir: t.TempDir()}
	for _, o := range opts {
		o(&r.opts)
	}
	t.Cleanup(r.Kill)
	var lastErr error
	// A free port can be taken between FreePort and redis-server's bind;
	// try a few.
	for attempt := 0; attempt < 3; attempt++ {
		r.port = FreePort(t, r.opts.bind)
		if r.opts.cluster {
			r.busPort = FreePort(t, r.opts.bind)
		}
		if lastErr = r.start(); lastErr == nil {
			return r
		}
	}
	t.Fatalf("testenv: start redis-server: %v", lastErr)
	return nil
}

// handedOut holds the ports FreePort has returned in this process: the
// kernel may offer a just-closed port again, and two listeners of one test
// must not get the same one.
var handedOut sync.Map

// FreePort returns a TCP port that was free on host (e.g. "127.0.0.1") a
// moment ago and that it has not returned before in this process. Another
// process may take it before the caller binds it; in-process listeners
// that take their ports from FreePort never do.
func FreePort(t testing.TB, host string) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatalf("testenv: find a free port on %s: %v", host, err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if _, dup := handedOut.LoadOrStore(port, true); !dup {
			return port
		}
	}
	t.Fatalf("testenv: no free port on %s that was not handed out before", host)
	return 0
}

func (r *Redis) args(extra []string) []string {
	args := []string{
		"--port", strconv.Itoa(r.port),
		"--bind", r.opts.bind,
		"--save", "",
		"--appendonly", "no",
		"--dir", r.dir,
		"--daemonize", "no",
		"--loglevel", "warning",
	}
	if r.opts.password != "" {
		args = append(args, "--requirepass", r.opts.password)
	}
	if r.opts.cluster {
		args = append(args,
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(r.busPort),
			"--cluster-node-timeout", "5000",
		)
	}
	args = append(args, r.opts.args...)
	return append(args, extra...)
}

// start runs redis-server and waits until it answers PING.
func (r *Redis) start(extra ...string) error {
	cmd := exec.Command("redis-server", r.args(extra)...)
	out := &LockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	r.mu.Lock()
	r.cmd, r.done, r.out = cmd, done, out
	r.mu.Unlock()

	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("redis-server on port %d exited: %s", r.port, strings.TrimSpace(out.String()))
		default:
		}
		// Any reply (PONG, or -LOADING while it loads a dataset) means the
		// server is up and serving.
		if _, err := r.Do("PING"); err == nil || IsReplyError(err) {
			return nil
		}
		if time.Now().After(deadline) {
			r.Kill()
			return fmt.Errorf("redis-server on port %d did not answer PING within %s: %s",
				r.port, startTimeout, strings.TrimSpace(out.String()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Host returns the address the server is bound to.
func (r *Redis) Host() string { return r.opts.bind }

// Port returns the server's port.
func (r *Redis) Port() int { return r.port }

// Addr returns host:port.
func (r *Redis) Addr() string { return net.JoinHostPort(r.opts.bind, strconv.Itoa(r.port)) }

// URL returns redis://[:password@]host:port.
func (r *Redis) URL() string {
	u := url.URL{Scheme: "redis", Host: r.Addr()}
	if r.opts.password != "" {
		u.User = url.UserPassword("", r.opts.password)
	}
	return u.String()
}

// Kill sends SIGKILL and waits until the process is reaped. Killing a
// stopped or already dead server is fine.
func (r *Redis) Kill() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
	if t := r.t; t.Failed() {
		if out := strings.TrimSpace(r.out.String()); out != "" {
			t.Logf("testenv: redis-server %s output:\n%s", r.Addr(), out)
		}
	}
}

// Stop sends SIGSTOP: the server keeps its sockets (connects still succeed
// in the kernel backlog) but answers nothing, like a hung host. Cont
// resumes it.
func (r *Redis) Stop() { r.signal(syscall.SIGSTOP) }

// Cont sends SIGCONT to a stopped server.
func (r *Redis) Cont() { r.signal(syscall.SIGCONT) }

func (r *Redis) signal(sig syscall.Signal) {
	r.t.Helper()
	r.mu.Lock()
	cmd := r.cmd
	r.mu.Unlock()
	if cmd == nil {
		r.t.Fatalf("testenv: signal %v: redis-server %s not started", sig, r.Addr())
	}
	if err := cmd.Process.Signal(sig); err != nil {
		r.t.Fatalf("testenv: signal %v to redis-server %s: %v", sig, r.Addr(), err)
	}
}

// Restart kills the server and starts it again on the same port and
// directory, with the same options plus extra arguments (e.g.
// "--key-load-delay", "1000"). It returns once the server answers PING; a
// LOADING reply counts as an answer, so a test can observe a server that is
// still loading its dataset. Use WaitReady to wait for PONG.
func (r *Redis) Restart(extra ...string) {
	r.t.Helper()
	r.Kill()
	if err := r.start(extra...); err != nil {
		r.t.Fatalf("testenv: restart redis-server: %v", err)
	}
}

// WaitReady waits until the server answers PING with PONG (not LOADING, not
// an error) or fails the test after 10s.
func (r *Redis) WaitReady() {
	r.t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		v, err := r.Do("PING")
		if err == nil && v == "PONG" {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("testenv: redis-server %s not ready: %v %v", r.Addr(), v, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// MustDo runs Do and fails the test on any error.
func (r *Redis) MustDo(args ...string) any {
	r.t.Helper()
	v, err := r.Do(args...)
	if err != nil {
		r.t.Fatalf("testenv: %s on %s: %v", strings.Join(args, " "), r.Addr(), err)
	}
	return v
}

// LockedBuffer is a bytes.Buffer safe for concurrent writers and readers:
// the output of a process, or of a logger, that a test reads while it runs.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
