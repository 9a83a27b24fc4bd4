package deploy

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
)

// Host is one server of the pool, as listed in the hosts file.
type Host struct {
	// Name is how the host is shown in logs and errors: the host of its
	// hosts-file line as written (without comments or "via …"), e.g. "web2"
	// or "deploy@[::1]:2222".
	Name string
	// User is the login user.
	User string
	// Addr is the host name or IP address, without brackets.
	Addr string
	// Port is the SSH port.
	Port int
	// Local marks the hosts-file line "local": the deployer's own machine,
	// where the steps run as the deployer's user without SSH. User and
	// Port are unused then; Addr is "localhost" (for DEPLOY_HEALTH_URL).
	Local bool
	// Jump lists the jump hosts (bastions) the SSH connection to this host
	// passes through, in order, as OpenSSH's ProxyJump: the first is
	// dialed directly, each next one (and then this host) through the one
	// before it. Empty: the host is dialed directly. A jump's own Jump is
	// unused: the hops before it are the ones listed before it here.
	Jump []Host
}

// Address returns "addr:port" for dialing, with IPv6 addresses in brackets;
// for a Local host, which is not dialed, just its Addr ("localhost").
func (h Host) Address() string {
	if h.Local {
		return h.Addr
	}
	return net.JoinHostPort(h.Addr, strconv.Itoa(h.Port))
}

// String returns the host's display name.
func (h Host) String() string {
	if h.Name != "" {
		return h.Name
	}
	if h.Local {
		return "local"
	}
	return h.User + "@" + h.Address()
}

// UnknownHostError is a host asked for (with --hosts, or "hosts" to the
// API) that the pool does not have.
type UnknownHostError struct {
	Name  string   // as asked
	Hosts []string // the pool, as the hosts file names its hosts
}

func (e *UnknownHostError) Error() string {
	return fmt.Sprintf("%q is not in the hosts file; its hosts are %s", e.Name, strings.Join(e.Hosts, ", "))
}

// SelectHosts returns the hosts of pool that names asks for, in pool
// order (the hosts file's), whatever the order of names; all of pool when
// names is empty. A name is a hosts-file entry (Host.Name), an address
// (Addr) or address:port (Address()); an address selects every host at
// it. A name that selects no host is an *UnknownHostError.
func SelectHosts(pool []Host, names []string) ([]Host, error) {
	if len(names) == 0 {
		return pool, nil
	}
	selects := func(n string, h Host) bool { return n == h.Name || n == h.Addr || n == h.Address() }
	for _, n := range names {
		if !slices.ContainsFunc(pool, func(h Host) bool { return selects(n, h) }) {
			e := &UnknownHostError{Name: n}
			for _, h := range pool {
				e.Hosts = append(e.Hosts, h.String())
			}
			return nil, e
		}
	}
	var out []Host
	for _, h := range pool {
		if slices.ContainsFunc(names, func(n string) bool { return selects(n, h) }) {
			out = append(out, h)
		}
	}
	return out, nil
}
