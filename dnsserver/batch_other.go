//go:build !(linux && (amd64 || arm64))

package dnsserver

import "net"

// newBatchConn returns pc's batched I/O for a batch of up to n datagrams.
func newBatchConn(pc net.PacketConn, n int) (batchConn, error) {
	return newXnetBatch(pc, n)
}
