package probes

import (
	"sync"
	"sync/atomic"
	"time"
)

// workerPool runs member probes on goroutines that outlive one probe. A
// probe's stack (go-redis, contexts, deadlines) grows to tens of KiB; a
// fresh goroutine per probe grew it again for every probe, which cost a
// tenth of the agent's CPU at thousands of members. The pool has no fixed
// size: a probe finding no idle worker starts one, so a hung server whose
// probes each wait the whole timeout never delays the probes of other
// members (a fixed pool would report them as not measured). At most
// maxIdle workers wait for more work, each for at most the pool's idle
// time; the others end after their probe. A burst (a hung server holds
// each of its members' probes for the whole timeout: thousands at once)
// therefore leaves no thousands of idle stacks behind.
type workerPool struct {
	jobs    chan func()
	idleFor time.Duration
	maxIdle int32
	idle    atomic.Int32
	// live counts running workers, for wait.
	live sync.WaitGroup

	mu   sync.Mutex
	stop chan struct{} // closed by close; replaced by the next run
}

func newWorkerPool(maxIdle int32, idleFor time.Duration) *workerPool {
	return &workerPool{jobs: make(chan func()), idleFor: idleFor, maxIdle: maxIdle, stop: make(chan struct{})}
}

// run hands job to an idle worker, or starts one.
func (p *workerPool) run(job func()) {
	select {
	case p.jobs <- job:
		return
	default:
	}
	p.mu.Lock()
	stop := p.stop
	p.mu.Unlock()
	p.live.Add(1)
	go p.work(job, stop)
}

func (p *workerPool) work(job func(), stop <-chan struct{}) {
	defer p.live.Done()
	var t *time.Timer
	for {
		job()
		if p.idle.Add(1) > p.maxIdle {
			p.idle.Add(-1)
			break
		}
		if t == nil {
			t = time.NewTimer(p.idleFor)
		} else {
			t.Reset(p.idleFor)
		}
		var ok bool
		select {
		case job = <-p.jobs:
			ok = true
		case <-t.C:
		case <-stop:
		}
		p.idle.Add(-1)
		if !ok {
			break
		}
	}
	if t != nil {
		t.Stop()
	}
}

// close ends the idle workers and waits for every worker to end (the busy
// ones after their job). Later runs start new workers.
func (p *workerPool) close() {
	p.mu.Lock()
	close(p.stop)
	p.stop = make(chan struct{})
	p.mu.Unlock()
	p.live.Wait()
}
