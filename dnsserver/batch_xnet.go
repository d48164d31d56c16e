package dnsserver

import (
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// xnetBatch is batchConn on golang.org/x/net's batched I/O (recvmmsg and
// sendmmsg where the system has them, one datagram per call elsewhere),
// for the systems without mmsgBatch. It allocates each datagram's source
// address.
type xnetBatch struct {
	conn interface {
		ReadBatch(ms []ipv4.Message, flags int) (int, error)
		WriteBatch(ms []ipv4.Message, flags int) (int, error)
	}
	in  []ipv4.Message
	out []ipv4.Message
}

func newXnetBatch(pc net.PacketConn, n int) (batchConn, error) {
	c := &xnetBatch{in: make([]ipv4.Message, n), out: make([]ipv4.Message, n)}
	c.conn = ipv4.NewPacketConn(pc)
	if a, ok := pc.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		c.conn = ipv6.NewPacketConn(pc)
	}
	for i := range c.in {
		c.in[i].Buffers = make([][]byte, 1)
		c.out[i].Buffers = make([][]byte, 1)
	}
	return c, nil
}

func (c *xnetBatch) readBatch(pkts [][]byte, sizes []int, from []netip.AddrPort) (int, error) {
	ms := c.in[:min(len(pkts), len(c.in))]
	for i := range ms {
		ms[i].Buffers[0] = pkts[i]
	}
	n, err := c.conn.ReadBatch(ms, 0)
	if err != nil {
		return 0, err
	}
	for i := range ms[:n] {
		sizes[i], from[i] = ms[i].N, netip.AddrPort{}
		if ua, ok := ms[i].Addr.(*net.UDPAddr); ok {
			from[i] = ua.AddrPort()
		}
	}
	return n, nil
}

func (c *xnetBatch) writeBatch(replies [][]byte, slots []int) (int, error) {
	ms := c.out[:min(len(replies), len(c.out))]
	for k := range ms {
		ms[k].Buffers[0], ms[k].Addr = replies[k], c.in[slots[k]].Addr
	}
	n, err := c.conn.WriteBatch(ms, 0)
	for k := range ms {
		ms[k].Buffers[0], ms[k].Addr = nil, nil
	}
	return max(n, 0), err // n is -1 when the first reply failed
}
