package admin

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/aagtm/aagtm/config"
)

// Mutating calls pass three checks before the bearer token (authorize):
//
//   - Host: the Host header names this node (checkHost). A browser tricked
//     by DNS rebinding sends the attacker's name, which no config lists.
//   - Content-Type: application/json (checkContentType). A cross-site form
//     or fetch can send text/plain, form or multipart bodies without a CORS
//     preflight, never application/json.
//   - Loopback: security.insecure (no token) opens mutations only to
//     requests that arrive on a loopback address (authorize).

// checkContentType refuses a mutating call whose body is not declared JSON.
func checkContentType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		if ct == "" {
			ct = "none"
		}
		return fmt.Errorf("%w: Content-Type %s: mutating calls need Content-Type: application/json (a cross-site form cannot send it)", ErrUnsupportedMediaType, ct)
	}
	return nil
}

// checkHost refuses a mutating call whose Host header does not name this
// node: an IP address of this machine (the one the request arrived on, a
// loopback or any interface address), localhost, or a host or name the
// config lists (nodes[] names and hosts, zone.ns names and glue).
func checkHost(r *http.Request, cfg *config.Config) error {
	host := hostOnly(r.Host)
	if host == "" {
		return fmt.Errorf("%w: no Host header: send the node's address or configured name", ErrForbidden)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.IsLoopback() || ip == localIP(r) || interfaceAddr(ip) {
			return nil
		}
	} else if host == "localhost" {
		return nil
	}
	if cfg != nil && configuredHosts(cfg)[host] {
		return nil
	}
	return fmt.Errorf("%w: Host %q is not an address or configured name of this node (DNS rebinding?): "+
		"call the node by an address of its machine or a name in the config (nodes[] or zone.ns)", ErrForbidden, host)
}

// hostOnly returns the host of a Host header or host:port, lower case,
// without brackets or a trailing dot.
func hostOnly(hostport string) string {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	return strings.ToLower(host)
}

// configuredHosts lists every host and name the config gives the nodes and
// the zone's name servers.
func configuredHosts(cfg *config.Config) map[string]bool {
	out := map[string]bool{}
	add := func(hostport string) {
		if h := hostOnly(hostport); h != "" {
			out[h] = true
		}
	}
	for _, n := range cfg.Nodes {
		add(n.Name)
		for _, a := range append([]string{n.Admin, n.Report, n.Listen}, n.DNS...) {
			add(a)
		}
	}
	for _, ns := range cfg.Zone.NS {
		add(ns.Name)
		for _, a := range ns.Addresses {
			add(a.String())
		}
	}
	return out
}

// localIP is the address the request arrived on; the zero Addr when the
// server does not record it.
func localIP(r *http.Request) netip.Addr {
	a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// interfaceAddr reports whether ip is assigned to one of the machine's
// interfaces (read per call: mutations are rare and interfaces change).
func interfaceAddr(ip netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Unmap() == ip.Unmap() {
			return true
		}
	}
	return false
}
