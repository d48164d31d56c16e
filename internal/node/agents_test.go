package node

import (
	"context"
	"testing"
	"time"

	"github.com/aagtm/aagtm/admin"
	"github.com/aagtm/aagtm/internal/testenv"
)

// The agents' report connections reach /v1/status: both fixture agents
// connected, with their boot ids and sequence.
func TestNodeStatusListsAgents(t *testing.T) {
	f := newFixture(t, "")
	c, err := admin.NewClient("ns1", f.node.AdminAddr(), "")
	if err != nil {
		t.Fatal(err)
	}
	var st *admin.Status
	testenv.WaitFor(t, 5*time.Second, "both agents connected in /v1/status", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, err = c.Status(ctx)
		if err != nil || len(st.Agents) != 2 {
			return false
		}
		for _, a := range st.Agents {
			if !a.Connected || a.Accepted == 0 || a.BootID == "" || a.LastSeq == 0 {
				return false
			}
		}
		return true
	})
	if st.Agents[0].ID != "east" || st.Agents[1].ID != "west" || st.Agents[0].Region != "east" {
		t.Errorf("agents %+v, want east and west", st.Agents)
	}
	// The node passes its name to the ingest: every ack carries it.
	if ack := f.lastAck.Load(); ack == nil || ack.GetNode() != "ns1" || !ack.GetAccepted() {
		t.Errorf("last ack %v, want an accepted report acknowledged by node ns1", ack)
	}
}
