package dnsserver

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestBatchConn: each batched I/O reads a burst of datagrams with their
// lengths and sources, and sends each reply to the source of the slot it
// answers, on IPv4, IPv6 and dual-stack sockets; a source is reported as
// the kernel gives it (an IPv4 client of a dual-stack socket as a mapped
// address).
func TestBatchConn(t *testing.T) {
	impls := []struct {
		name string
		new  func(net.PacketConn, int) (batchConn, error)
	}{
		{"platform", newBatchConn},
		{"x/net", newXnetBatch},
	}
	sockets := []struct {
		name, listen, client string
		mapped               bool // the sources are IPv4-mapped IPv6
	}{
		{"IPv4", "127.0.0.1:0", "127.0.0.1", false},
		{"IPv6", "[::1]:0", "::1", false},
		{"dual-stack, IPv4 client", "[::]:0", "127.0.0.1", true},
		{"dual-stack, IPv6 client", "[::]:0", "::1", false},
	}
	const clients, batch = 3, 4
	for _, impl := range impls {
		for _, sk := range sockets {
			t.Run(impl.name+"/"+sk.name, func(t *testing.T) {
				pc, err := net.ListenPacket("udp", sk.listen)
				if err != nil {
					t.Fatal(err)
				}
				defer pc.Close()
				bc, err := impl.new(pc, batch)
				if err != nil {
					t.Fatal(err)
				}
				port := pc.LocalAddr().(*net.UDPAddr).Port
				server := &net.UDPAddr{IP: net.ParseIP(sk.client), Port: port}
				// Each client sends two datagrams of its own length.
				var conns []*net.UDPConn
				sent := map[netip.AddrPort][]string{}
				for c := range clients {
					conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(sk.client)}, server)
					if err != nil {
						t.Fatal(err)
					}
					defer conn.Close()
					conns = append(conns, conn)
					src := conn.LocalAddr().(*net.UDPAddr).AddrPort()
					if sk.mapped {
						src = netip.AddrPortFrom(netip.AddrFrom16(src.Addr().As16()), src.Port())
					}
					for i := range 2 {
						msg := fmt.Sprintf("query %d from client %d%s", i, c, bytes.Repeat([]byte{'.'}, c))
						if _, err := conn.Write([]byte(msg)); err != nil {
							t.Fatal(err)
						}
						sent[src] = append(sent[src], msg)
					}
				}
				pkts := make([][]byte, batch)
				for i := range pkts {
					pkts[i] = make([]byte, 512)
				}
				sizes, from := make([]int, batch), make([]netip.AddrPort, batch)
				got := map[netip.AddrPort][]string{}
				for read := 0; read < 2*clients; {
					n, err := bc.readBatch(pkts, sizes, from)
					if err != nil {
						t.Fatal(err)
					}
					if n < 1 || n > batch {
						t.Fatalf("readBatch read %d datagrams, want 1 to %d", n, batch)
					}
					// Reply to each slot, backwards, with the query in
					// upper case.
					var replies [][]byte
					var slots []int
					for i := range n {
						got[from[i]] = append(got[from[i]], string(pkts[i][:sizes[i]]))
						replies = append(replies, bytes.ToUpper(pkts[n-1-i][:sizes[n-1-i]]))
						slots = append(slots, n-1-i)
					}
					for k := 0; k < len(replies); {
						w, err := bc.writeBatch(replies[k:], slots[k:])
						if err != nil {
							t.Fatal(err)
						}
						k += w
					}
					read += n
				}
				for src, msgs := range sent {
					if g := got[src]; fmt.Sprint(g) != fmt.Sprint(msgs) {
						t.Errorf("from %v read %q, want %q", src, g, msgs)
					}
				}
				if len(got) != len(sent) {
					t.Errorf("sources %v, want those of %v", got, sent)
				}
				for c, conn := range conns {
					var want, replies []string
					for src, msgs := range sent {
						if src.Port() == conn.LocalAddr().(*net.UDPAddr).AddrPort().Port() {
							for _, msg := range msgs {
								want = append(want, strings.ToUpper(msg))
							}
						}
					}
					buf := make([]byte, 512)
					for range want {
						_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
						n, err := conn.Read(buf)
						if err != nil {
							t.Fatalf("client %d: %v", c, err)
						}
						replies = append(replies, string(buf[:n]))
					}
					slices.Sort(want)
					slices.Sort(replies)
					if !slices.Equal(replies, want) {
						t.Errorf("client %d got replies %q, want %q", c, replies, want)
					}
				}
			})
		}
	}
}
