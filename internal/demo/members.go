package demo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// member is one demo Redis server: a redis-server process or an embedded
// miniredis, on its own loopback address.
type member struct {
	name, region, addr string
	port               int
	dir                string

	mu      sync.Mutex
	cmd     *exec.Cmd            // redis-server backend
	pid     int                  // redis-server pid, for kill -STOP by hand
	stopped bool                 // SIGSTOPped
	mini    *miniredis.Miniredis // miniredis backend
}

func (m *member) hostPort() string { return net.JoinHostPort(m.addr, strconv.Itoa(m.port)) }

// startMembers starts one member per region with the chosen backend.
func startMembers(ctx context.Context, backend, dir string, port int) ([]*member, string, error) {
	useProcess := false
	switch backend {
	case "", "auto":
		_, err := exec.LookPath("redis-server")
		useProcess = err == nil
	case "redis-server":
		if _, err := exec.LookPath("redis-server"); err != nil {
			return nil, "", errors.New("--backend redis-server: redis-server is not on PATH (apt-get install redis-server), or use --backend miniredis")
		}
		useProcess = true
	case "miniredis":
	default:
		return nil, "", fmt.Errorf("--backend %q: use auto, redis-server or miniredis", backend)
	}
	name := "embedded miniredis (redis-server not found on PATH)"
	if useProcess {
		name = "redis-server processes"
	}
	var out []*member
	for _, r := range regions {
		m := &member{name: r.member, region: r.name, addr: r.addr, port: port, dir: filepath.Join(dir, r.member)}
		var err error
		if useProcess {
			err = m.startProcess(ctx)
		} else {
			err = m.startMini()
		}
		if err != nil {
			for _, o := range out {
				o.stop()
			}
			return nil, "", fmt.Errorf("start member %s on %s: %w", m.name, m.hostPort(), err)
		}
		out = append(out, m)
	}
	return out, name, nil
}

func (m *member) startProcess(ctx context.Context) error {
	if err := os.MkdirAll(m.dir, 0o750); err != nil {
		return err
	}
	cmd := exec.Command("redis-server", "--bind", m.addr, "--port", strconv.Itoa(m.port),
		"--save", "", "--appendonly", "no", "--dir", m.dir, "--protected-mode", "no", "--loglevel", "warning")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	m.cmd, m.pid = cmd, cmd.Process.Pid
	return waitPing(ctx, m.hostPort())
}

func (m *member) startMini() error {
	mr := miniredis.NewMiniRedis()
	if err := mr.StartAddr(m.hostPort()); err != nil {
		return err
	}
	m.mini = mr
	return nil
}

// waitPing waits until a Redis server answers PING.
func waitPing(ctx context.Context, addr string) error {
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		err := c.Ping(pctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("no PONG within 5s: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fail makes the member unreachable: a redis-server is SIGSTOPped (a hang,
// the hard case for probes), a miniredis is closed.
func (m *member) fail() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.cmd != nil:
		if m.stopped {
			return errors.New("already failed")
		}
		if err := m.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			return err
		}
		m.stopped = true
	case m.mini != nil:
		m.mini.Close()
		m.mini = nil
	default:
		return errors.New("already failed")
	}
	return nil
}

// recover undoes fail.
func (m *member) recover(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.cmd != nil:
		if !m.stopped {
			return errors.New("not failed")
		}
		if err := m.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			return err
		}
		m.stopped = false
		return nil
	case m.mini == nil:
		if err := m.startMini(); err != nil {
			return err
		}
		return waitPing(ctx, m.hostPort())
	}
	return errors.New("not failed")
}

// stop ends the member for good and reaps a process.
func (m *member) stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		_ = m.cmd.Process.Signal(syscall.SIGCONT)
		_ = m.cmd.Process.Kill()
		_ = m.cmd.Wait()
		m.cmd = nil
	}
	if m.mini != nil {
		m.mini.Close()
		m.mini = nil
	}
}

// replicator stands in for Active-Active replication in the demo: every
// 20ms it copies each region's heartbeat key from that region's own member
// to each other member. Every (source, target) pair runs its own loop with
// its own timeout, as Active-Active replication keeps a link per pair of
// members: a hung member delays only the copies from and to it, never
// those between two healthy members. Pausing a target makes that member's
// lag grow.
type replicator struct {
	members []*member
	prefix  string
	mu      sync.Mutex
	paused  map[string]bool
}

// replicateEvery is how often each pair copies; copyTimeout bounds each
// read and write.
const (
	replicateEvery = 20 * time.Millisecond
	copyTimeout    = 150 * time.Millisecond
)

func newReplicator(members []*member, prefix string) *replicator {
	return &replicator{members: members, prefix: prefix, paused: map[string]bool{}}
}

func (r *replicator) pause(member string, on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.paused[member] = on
}

func (r *replicator) isPaused(member string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.paused[member]
}

// run copies every pair of members until ctx is done.
func (r *replicator) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, src := range r.members {
		for _, dst := range r.members {
			if dst == src {
				continue
			}
			wg.Go(func() { r.link(ctx, src, dst) })
		}
	}
	wg.Wait()
}

// link copies src's heartbeat key to dst every replicateEvery. Each pair
// has its own connections, so a hung member cannot hold a connection that
// another pair waits for.
func (r *replicator) link(ctx context.Context, src, dst *member) {
	from, to := pairClient(src), pairClient(dst)
	defer from.Close()
	defer to.Close()
	key := r.prefix + "{" + src.region + "}"
	t := time.NewTicker(replicateEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if r.isPaused(dst.name) {
			continue
		}
		gctx, cancel := context.WithTimeout(ctx, copyTimeout)
		// A member down or no heartbeat yet: the next round retries.
		if val, err := from.Get(gctx, key).Result(); err == nil {
			_ = to.Set(gctx, key, val, 0).Err()
		}
		cancel()
	}
}

// pairClient is a one-connection client of m for one replication link.
func pairClient(m *member) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: m.hostPort(), DialTimeout: copyTimeout, ReadTimeout: copyTimeout,
		WriteTimeout: copyTimeout, MaxRetries: -1, PoolSize: 1})
}
