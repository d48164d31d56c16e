package dnsserver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"syscall"
)

// bound is one listen address: its UDP sockets, its TCP listener and the
// address they share.
type bound struct {
	udp  []net.PacketConn
	tcp  net.Listener
	addr netip.AddrPort
}

// bind opens n UDP sockets (SO_REUSEPORT when n > 1) and one TCP listener
// on addr. With port 0 the kernel picks the UDP port and TCP takes the same
// one; when that TCP port is taken, it tries again with another.
func bind(ctx context.Context, addr string, n int) (bound, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return bound{}, err
	}
	tries := 1
	if port == "0" {
		tries = 10
	}
	for try := 1; ; try++ {
		b, err := bindOnce(ctx, host, addr, n)
		if err == nil || try >= tries || !errors.Is(err, syscall.EADDRINUSE) {
			return b, err
		}
	}
}

func bindOnce(ctx context.Context, host, addr string, n int) (b bound, err error) {
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	lc := net.ListenConfig{}
	if n > 1 {
		lc.Control = reusePort
	}
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return b, err
	}
	b.udp = append(b.udp, pc)
	ua, ok := pc.LocalAddr().(*net.UDPAddr)
	if !ok {
		return b, errors.New("not a UDP address")
	}
	b.addr = ua.AddrPort()
	b.addr = netip.AddrPortFrom(b.addr.Addr().Unmap(), b.addr.Port())
	// The other sockets bind exactly where the first one did (a host name
	// like localhost could resolve differently); "" stays the wildcard.
	same := b.addr.String()
	if host == "" {
		same = net.JoinHostPort("", strconv.Itoa(int(b.addr.Port())))
	}
	for len(b.udp) < n {
		pc, err := lc.ListenPacket(ctx, "udp", same)
		if err != nil {
			return b, err
		}
		b.udp = append(b.udp, pc)
	}
	b.tcp, err = (&net.ListenConfig{}).Listen(ctx, "tcp", same)
	return b, err
}

func (b bound) close() {
	for _, pc := range b.udp {
		_ = pc.Close()
	}
	if b.tcp != nil {
		_ = b.tcp.Close()
	}
}
