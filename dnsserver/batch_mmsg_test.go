//go:build linux && (amd64 || arm64)

package dnsserver

import (
	"net"
	"net/netip"
	"testing"
)

// TestMmsgBatchAllocs: reading a batch and writing its replies allocates
// nothing on Linux (golang.org/x/net allocates each source address), so
// the UDP loop, fast path included, makes no garbage per query.
func TestMmsgBatchAllocs(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	bc, err := newBatchConn(pc, udpBatch)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialUDP("udp", nil, pc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pkts, sizes, from := [][]byte{make([]byte, 512)}, make([]int, 1), make([]netip.AddrPort, 1)
	replies, slots := make([][]byte, 1), []int{0}
	query, buf := []byte("query"), make([]byte, 512)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := conn.Write(query); err != nil {
			t.Fatal(err)
		}
		n, err := bc.readBatch(pkts, sizes, from)
		if err != nil || n != 1 {
			t.Fatalf("readBatch: %d, %v", n, err)
		}
		replies[0] = pkts[0][:sizes[0]]
		if _, err := bc.writeBatch(replies, slots); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Read(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per query and reply, want 0", allocs)
	}
}
