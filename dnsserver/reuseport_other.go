//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package dnsserver

import "syscall"

// reusePort does nothing where SO_REUSEPORT is not available: the extra
// sockets then fail to bind, so Options.ReusePort must stay 0 or 1 here.
func reusePort(network, address string, c syscall.RawConn) error { return nil }
