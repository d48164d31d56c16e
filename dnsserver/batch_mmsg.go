//go:build linux && (amd64 || arm64)

package dnsserver

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsgBatch is batchConn on Linux: recvmmsg and sendmmsg on headers,
// buffers and source addresses set up once, so a batch allocates nothing.
//
// The system calls are made without telling the Go scheduler
// (RawSyscall6): on a non-blocking socket they never wait, and a batch of
// sends takes tens of microseconds, long enough for the runtime's monitor
// to hand the goroutine's P to another thread when the scheduler knows
// (it retakes a P after one 20 µs tick in a system call when no other P
// is idle), which costs two thread switches per batch. When the socket is
// empty the goroutine parks in the netpoller as any socket read does.
type mmsgBatch struct {
	rc syscall.RawConn
	// Per read slot: its header, buffer and source address (the
	// destination of the slot's reply).
	in    []mmsghdr
	iov   []unix.Iovec
	names []unix.RawSockaddrInet6
	// The replies of a write.
	out  []mmsghdr
	oiov []unix.Iovec
	// The read and write callbacks of rc (method values made once) and
	// what their last call did.
	readFn, writeFn func(fd uintptr) bool
	vlen            int
	n               int
	errno           syscall.Errno
}

// mmsghdr is struct mmsghdr of recvmmsg(2).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// newBatchConn returns pc's batched I/O for a batch of up to n datagrams.
func newBatchConn(pc net.PacketConn, n int) (batchConn, error) {
	return newMmsgBatch(pc, n)
}

func newMmsgBatch(pc net.PacketConn, n int) (batchConn, error) {
	sc, ok := pc.(syscall.Conn)
	if !ok {
		return nil, &net.OpError{Op: "listen", Net: "udp", Addr: pc.LocalAddr(), Err: syscall.EINVAL}
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	c := &mmsgBatch{
		rc:    rc,
		in:    make([]mmsghdr, n),
		iov:   make([]unix.Iovec, n),
		names: make([]unix.RawSockaddrInet6, n),
		out:   make([]mmsghdr, n),
		oiov:  make([]unix.Iovec, n),
	}
	for i := range c.in {
		c.in[i].hdr.Iov = &c.iov[i]
		c.in[i].hdr.SetIovlen(1)
		c.out[i].hdr.Iov = &c.oiov[i]
		c.out[i].hdr.SetIovlen(1)
	}
	c.readFn, c.writeFn = c.recv, c.send
	return c, nil
}

func (c *mmsgBatch) readBatch(pkts [][]byte, sizes []int, from []netip.AddrPort) (int, error) {
	c.vlen = min(len(pkts), len(c.in))
	for i := range c.vlen {
		c.iov[i].Base = &pkts[i][0]
		c.iov[i].SetLen(len(pkts[i]))
		c.in[i].hdr.Name = (*byte)(unsafe.Pointer(&c.names[i]))
		c.in[i].hdr.Namelen = unix.SizeofSockaddrInet6
	}
	if err := c.rc.Read(c.readFn); err != nil {
		return 0, err
	}
	if c.errno != 0 {
		return 0, os.NewSyscallError("recvmmsg", c.errno)
	}
	for i := range c.n {
		sizes[i] = min(int(c.in[i].len), len(pkts[i]))
		from[i] = c.source(i)
	}
	return c.n, nil
}

// recv is rc's read callback: one recvmmsg, or false to wait in the
// netpoller while the socket is empty. (Polling the empty socket a few
// more times before waiting, to spare the netpoller's wake-up under a
// steady stream, did not pay in bench/dns/run.sh: no gain with the server
// on one core, lower QPS with everything on two.)
func (c *mmsgBatch) recv(fd uintptr) bool {
	return c.mmsg(fd, unix.SYS_RECVMMSG, c.in)
}

// send is rc's write callback: one sendmmsg, or false to wait in the
// netpoller while the socket's send buffer is full.
func (c *mmsgBatch) send(fd uintptr) bool {
	return c.mmsg(fd, unix.SYS_SENDMMSG, c.out)
}

// mmsg makes the system call trap (recvmmsg or sendmmsg) on the first
// c.vlen headers of hdrs, again when a signal interrupted it. It reports
// false when the socket is not ready, else true with the call's result in
// c.n and c.errno.
func (c *mmsgBatch) mmsg(fd, trap uintptr, hdrs []mmsghdr) bool {
	for {
		n, _, errno := unix.RawSyscall6(trap, fd, uintptr(unsafe.Pointer(&hdrs[0])), uintptr(c.vlen), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		case 0:
			c.n, c.errno = int(n), 0
			return true
		default:
			c.n, c.errno = 0, errno
			return true
		}
	}
}

// source returns the source address of slot i.
func (c *mmsgBatch) source(i int) netip.AddrPort {
	sa := &c.names[i]
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	switch {
	case sa.Family == unix.AF_INET6 && c.in[i].hdr.Namelen >= unix.SizeofSockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port)
	case sa.Family == unix.AF_INET && c.in[i].hdr.Namelen >= unix.SizeofSockaddrInet4:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	}
	return netip.AddrPort{}
}

func (c *mmsgBatch) writeBatch(replies [][]byte, slots []int) (int, error) {
	c.vlen = min(len(replies), len(c.out))
	for k := range c.vlen {
		c.oiov[k].Base = &replies[k][0]
		c.oiov[k].SetLen(len(replies[k]))
		c.out[k].hdr.Name = c.in[slots[k]].hdr.Name
		c.out[k].hdr.Namelen = c.in[slots[k]].hdr.Namelen
	}
	err := c.rc.Write(c.writeFn)
	for k := range c.vlen {
		c.oiov[k].Base = nil // the replies' buffers are the loop's to reuse
	}
	if err != nil {
		return 0, err
	}
	if c.errno != 0 {
		return c.n, os.NewSyscallError("sendmmsg", c.errno)
	}
	return c.n, nil
}
