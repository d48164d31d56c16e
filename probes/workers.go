package probes

import (
	"sync"
	"time"
)

// workerPool runs member probes on goroutines that outlive one probe. A
// probe's stack (go-redis, contexts, deadlines) grows to tens of KiB; a
// fresh goroutine per probe grew it again for every probe, which cost a
// tenth of the agent's CPU at thousands of members. The pool has no fixed
// size: a probe finding no idle worker starts one, so a hung server whose
// probes each wait the whole timeout never delays the probes of other
// members (a fixed pool would report them as not measured). A worker idle
// for the pool's idle time exits, so the pool shrinks back after a burst.
type workerPool struct {
	jobs chan func()
	idle time.Duration
	// live counts running workers, for wait.
	live sync.WaitGroup

	mu   sync.Mutex
	stop chan struct{} // closed by close; replaced by the next run
}

func newWorkerPool(idle time.Duration) *workerPool {
	return &workerPool{jobs: make(chan func()), idle: idle, stop: make(chan struct{})}
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
	t := time.NewTimer(p.idle)
	defer t.Stop()
	for {
		job()
		t.Reset(p.idle)
		select {
		case job = <-p.jobs:
		case <-t.C:
			return
		case <-stop:
			return
		}
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
