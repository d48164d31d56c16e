package testenv

import (
	"strings"
	"testing"
	"time"
)

func TestStartRedisLifecycle(t *testing.T) {
	r := StartRedis(t, WithBind("127.0.0.11"), WithPassword("s3cret"))
	if !strings.HasPrefix(r.Addr(), "127.0.0.11:") {
		t.Fatalf("Addr = %s, want 127.0.0.11:port", r.Addr())
	}
	if want := "redis://:s3cret@" + r.Addr(); r.URL() != want {
		t.Fatalf("URL = %s, want %s", r.URL(), want)
	}
	r.MustDo("SET", "k", "v")
	if v := r.MustDo("GET", "k"); v != "v" {
		t.Fatalf("GET k = %v", v)
	}

	r.Stop()
	start := time.Now()
	if _, err := r.DoTimeout(300*time.Millisecond, "PING"); err == nil {
		t.Fatal("PING to a stopped server succeeded")
	}
	if time.Since(start) < 300*time.Millisecond {
		t.Fatal("PING to a stopped server failed fast; want a timeout")
	}
	r.Cont()
	r.WaitReady()

	port := r.Port()
	r.Restart()
	if r.Port() != port {
		t.Fatalf("port changed on restart: %d -> %d", port, r.Port())
	}
	if v := r.MustDo("GET", "k"); v != nil {
		t.Fatalf("GET k after restart without persistence = %v, want nil", v)
	}
	r.Kill()
	if _, err := r.Do("PING"); err == nil {
		t.Fatal("PING to a killed server succeeded")
	}
}

func TestStartCluster(t *testing.T) {
	c := StartCluster(t, 3)
	if len(c.Nodes) != 3 || len(c.Ranges) != 3 {
		t.Fatalf("nodes %d ranges %d", len(c.Nodes), len(c.Ranges))
	}
	if c.Ranges[0][0] != 0 || c.Ranges[2][1] != Slots-1 {
		t.Fatalf("ranges %v do not cover every slot", c.Ranges)
	}
	for _, n := range c.Nodes {
		v := n.MustDo("CLUSTER", "INFO").(string)
		if !strings.Contains(v, "cluster_known_nodes:3") {
			t.Fatalf("%s: %s", n.Addr(), v)
		}
	}
}
