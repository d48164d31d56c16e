package testenv

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Slots is the number of hash slots of a Redis Cluster.
const Slots = 16384

// Cluster is an OSS Redis Cluster of primaries only, one per shard, each a
// Redis owned by the test.
type Cluster struct {
	// Nodes are the shards' servers; Nodes[i] owns Ranges[i].
	Nodes []*Redis
	// Ranges are the slot ranges, [first, last] inclusive, in node order.
	Ranges [][2]int
}

// StartCluster starts shards cluster-enabled servers (opts apply to each),
// splits the 16384 slots evenly among them with CLUSTER ADDSLOTSRANGE, joins
// them with CLUSTER MEET and waits until every node reports
// cluster_state:ok and knows every shard. Startup takes about a second.
func StartCluster(t testing.TB, shards int, opts ...Option) *Cluster {
	t.Helper()
	if shards < 1 {
		t.Fatalf("testenv: StartCluster needs at least one shard, got %d", shards)
	}
	c := &Cluster{}
	opts = append(append([]Option{}, opts...), WithCluster())
	for i := 0; i < shards; i++ {
		c.Nodes = append(c.Nodes, StartRedis(t, opts...))
	}
	for i, n := range c.Nodes {
		first, last := i*Slots/shards, (i+1)*Slots/shards-1
		c.Ranges = append(c.Ranges, [2]int{first, last})
		n.MustDo("CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(first), strconv.Itoa(last))
	}
	for _, n := range c.Nodes[1:] {
		c.Nodes[0].MustDo("CLUSTER", "MEET", n.Host(), strconv.Itoa(n.port), strconv.Itoa(n.busPort))
	}
	deadline := time.Now().Add(startTimeout)
	for _, n := range c.Nodes {
		for {
			err := n.clusterReady(shards)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("testenv: cluster did not converge: %s: %v", n.Addr(), err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return c
}

// clusterReady checks that the node sees cluster_state:ok and one slot range
// per shard.
func (r *Redis) clusterReady(shards int) error {
	info, err := r.Do("CLUSTER", "INFO")
	if err != nil {
		return err
	}
	s, _ := info.(string)
	if !strings.Contains(s, "cluster_state:ok") {
		return fmt.Errorf("cluster_state not ok")
	}
	slots, err := r.Do("CLUSTER", "SLOTS")
	if err != nil {
		return err
	}
	if got, _ := slots.([]any); len(got) != shards {
		return fmt.Errorf("CLUSTER SLOTS has %d ranges, want %d", len(got), shards)
	}
	return nil
}

// URL returns the first node's URL: a seed for cluster-aware clients.
func (c *Cluster) URL() string { return c.Nodes[0].URL() }
