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
	// Local marks the hosts-file line "local": the deployer's own machine,
	// where the steps run as the deployer's user without SSH. User and
	// Port are unused then; Addr is "localhost" (for DEPLOY_HEALTH_URL).
	Local bool
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
