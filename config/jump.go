package config

import (
	"fmt"
	"strings"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// jumpForm is the form of a jump host list, for error messages.
const jumpForm = "expected [user@]host[:port], several separated by commas (as OpenSSH's ProxyJump), e.g. bastion, admin@bastion.example.com:2222 or gw1,gw2.internal"

// noJump is the jump list that says "direct", as OpenSSH's ProxyJump none.
const noJump = "none"

// viaWord introduces a hosts-file line's own jump hosts: "web3 via bastion".
const viaWord = "via"

// ParseJump parses a list of jump hosts (DEPLOY_SSH_JUMP, or what follows
// "via" on a hosts-file line): [user@]host[:port] items separated by
// commas, in the order the connection passes through them, as OpenSSH's
// ProxyJump. White space around an item is dropped. "" and "none" mean no
// jump (nil). An item that names no user logs in as defaultUser, and one
// that names no port uses 22. Each returned Host has Name set to the item
// as written.
func ParseJump(s, defaultUser string) ([]deploy.Host, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == noJump {
		return nil, nil
	}
	items := strings.Split(s, ",")
	var hops []deploy.Host
	for i, item := range items {
		item = strings.TrimSpace(item)
		hop, err := parseHop(item, defaultUser)
		if err != nil {
			if len(items) > 1 {
				return nil, fmt.Errorf("jump host %d %q: %w", i+1, item, err)
			}
			return nil, err
		}
		hops = append(hops, hop)
	}
	return hops, nil
}

// parseHop parses one jump host, [user@]host[:port].
func parseHop(item, defaultUser string) (deploy.Host, error) {
	switch {
	case item == "":
		return deploy.Host{}, fmt.Errorf("empty jump host (a ',' too many?); %s", jumpForm)
	case item == noJump:
		return deploy.Host{}, fmt.Errorf("%q (go direct) is written alone, not in a list; %s", noJump, jumpForm)
	case strings.Contains(item, "://"):
		return deploy.Host{}, fmt.Errorf("write the jump host as [user@]host[:port], without a URL scheme; %s", jumpForm)
	case isLocal(item):
		return deploy.Host{}, fmt.Errorf("%q (this machine) cannot be a jump host; name the jump host by its name or address", item)
	}
	h, err := parseHost(item, defaultUser)
	if err != nil {
		return deploy.Host{}, err
	}
	return h, nil
}
