package deploy

import (
	"net"
	"strconv"
)

// Host is one server of the pool, as listed in the hosts file.
type Host struct {
	// Name is how the host is shown in logs and errors: the hosts-file
	// line as written (without comments), e.g. "web2" or "deploy@[::1]:2222".
	Name string
	// User is the login user.
	User string
	// Addr is the host name or IP address, without brackets.
	Addr string
	// Port is the SSH port.
	Port int
}

// Address returns "addr:port" for dialing, with IPv6 addresses in brackets.
func (h Host) Address() string {
	return net.JoinHostPort(h.Addr, strconv.Itoa(h.Port))
}

// String returns the host's display name.
func (h Host) String() string {
	if h.Name != "" {
		return h.Name
	}
	return h.User + "@" + h.Address()
}
