package config

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/pushdeploy/pushdeploy/deploy"
)

const hostsForm = "expected [user@]host[:port], e.g. web1, deploy@10.0.0.5:2222 or deploy@[2001:db8::5]:22"

var (
	userRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)
	labelRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$`)
	digitRE = regexp.MustCompile(`^[0-9]+$`)
)

// localName is the hosts-file line for the deployer's own machine.
const localName = "local"

// HostDefaults are what a hosts-file line gets for what it does not say.
type HostDefaults struct {
	// User is the login user (DEPLOY_SSH_USER), of the host and of its jump
	// hosts; the caller has checked it.
	User string
	// Jump are the jump hosts (DEPLOY_SSH_JUMP, parsed by ParseJump) of a
	// line that names none; nil: such lines are dialed directly.
	Jump []deploy.Host
}

// ParseHosts parses a hosts file: one host a line, [user@]host[:port], with
// blank lines and # comments (a whole line, or after a space at its end).
// host is a host name, an IPv4 address or an IPv6 address in brackets. The
// port defaults to 22 and the user to def.User. A line may name the jump
// hosts its SSH connection goes through, overriding def.Jump: "HOST via
// JUMP[,JUMP…]" (each [user@]host[:port], as ParseJump reads them), or
// "HOST via none" to go direct. "HOST as NAME" (before any via) gives the
// host the name it goes by; without it the name is HOST as written. The line "local" is this machine, reached
// without SSH (deploy.Host.Local); it may appear once, and takes no jump.
// Hosts are returned in file order; a Host's Name is the HOST part as
// written.
//
// A malformed file gives an *Error with one problem a bad line, each
// starting with "file:line: ". A file without hosts is not an error here.
func ParseHosts(r io.Reader, file string, def HostDefaults) ([]deploy.Host, error) {
	var (
		hosts []deploy.Host
		probs problems
		seen  = make(map[string]int) // user@addr:port -> line
		names = make(map[string]int) // Name -> line
		// localLine is the line of "local", 0 before it.
		localLine int
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := stripComment(sc.Text())
		if line == "" {
			continue
		}
		if line == localName {
			if localLine > 0 {
				probs.add("%s:%d: %q: already listed on line %d; list this machine once", file, n, line, localLine)
				continue
			}
			localLine = n
			hosts = append(hosts, deploy.Host{Name: localName, Addr: "localhost", Local: true})
			continue
		}
		h, err := parseLine(line, def)
		if err != nil {
			probs.add("%s:%d: %q: %v", file, n, line, err)
			continue
		}
		key := hostKey(h)
		if first, dup := seen[key]; dup {
			probs.add("%s:%d: %q: the same host as line %d (%s); list each host once", file, n, line, first, key)
			continue
		}
		// A name says one host: --hosts and the logs must not be ambiguous.
		if first, dup := names[h.Name]; dup {
			probs.add("%s:%d: %q: the name %s is taken by line %d; give each host its own name", file, n, line, h.Name, first)
			continue
		}
		seen[key], names[h.Name] = n, n
		hosts = append(hosts, h)
	}
	if err := sc.Err(); err != nil {
		probs.add("%s: %v", file, err)
	}
	if err := probs.err(); err != nil {
		return nil, err
	}
	return hosts, nil
}

// stripComment removes a # comment (at the start of the line or after a
// space or tab) and the white space around what remains.
func stripComment(line string) string {
	for i := 0; i < len(line); i++ {
		if line[i] == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			line = line[:i]
			break
		}
	}
	return strings.TrimSpace(line)
}

// lineForm is the form of a hosts-file line, for error messages.
const lineForm = "write one host a line: HOST, HOST via JUMP[,JUMP…] (the jump hosts its SSH connection goes through) or HOST via none (direct); after HOST, as NAME gives it the name it goes by"

// parseLine parses a hosts-file line other than "local": HOST, HOST via
// JUMP[,JUMP…] or HOST via none.
func parseLine(line string, def HostDefaults) (deploy.Host, error) {
	if hasControl(strings.ReplaceAll(line, "\t", " ")) {
		return deploy.Host{Name: line}, fmt.Errorf("contains a control character")
	}
	fields := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
	if fields[0] == localName {
		return deploy.Host{Name: line}, fmt.Errorf("%q (this machine) is reached without SSH: it takes no jump host; write it alone", localName)
	}
	h, err := parseHost(fields[0], def.User)
	if err != nil {
		return h, err
	}
	// HOST as NAME: the name the host goes by in progress, logs, metrics,
	// the API and --hosts.
	if len(fields) >= 2 && fields[1] == asWord {
		if len(fields) == 2 {
			return h, fmt.Errorf("%q needs a name after it, e.g. %s as web1", asWord, fields[0])
		}
		if err := validHostName(fields[2]); err != nil {
			return h, err
		}
		h.Name = fields[2]
		fields = append(fields[:1:1], fields[3:]...)
	}
	if len(fields) == 1 {
		h.Jump = def.Jump
		return h, nil
	}
	switch word := fields[1]; {
	case word == viaWord && len(fields) == 2:
		return h, fmt.Errorf("%q needs the jump host(s) after it, e.g. %s via bastion or %s via deploy@gw.example.com:2222; or %s via none to go direct", viaWord, fields[0], fields[0], fields[0])
	case word == viaWord && len(fields) == 3:
		if h.Jump, err = ParseJump(fields[2], def.User); err != nil {
			return h, err
		}
		return h, nil
	case word == viaWord && len(fields) == 5 && fields[3] == asWord:
		return h, fmt.Errorf("write %q before %q: %s as %s via %s", asWord, viaWord, fields[0], fields[4], fields[2])
	case word == viaWord:
		return h, fmt.Errorf("white space in the jump list; separate jump hosts with commas alone, e.g. %s via gw1,gw2", fields[0])
	case strings.EqualFold(word, viaWord):
		return h, fmt.Errorf("%q: write %q in lower case, e.g. %s via bastion", word, viaWord, fields[0])
	case strings.Contains(word, "="):
		return h, fmt.Errorf("%q: name a jump host with %q, e.g. %s via bastion; %s", word, viaWord, fields[0], lineForm)
	}
	return h, fmt.Errorf("contains white space; %s", lineForm)
}

// asWord introduces a host's name on its hosts-file line.
const asWord = "as"

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// validHostName checks the NAME of "HOST as NAME".
func validHostName(name string) error {
	switch {
	case !nameRE.MatchString(name):
		return fmt.Errorf("name %q: use letters, digits, '.', '_' and '-' (at most 63, starting with a letter or digit), e.g. web1", name)
	case name == localName || name == viaWord || name == asWord || name == "none":
		return fmt.Errorf("name %q is a word of the hosts file; choose another, e.g. web1", name)
	}
	return nil
}

// parseHost parses one host, [user@]host[:port].
func parseHost(line, defaultUser string) (deploy.Host, error) {
	h := deploy.Host{Name: line, User: defaultUser, Port: 22}
	if hasControl(line) {
		return h, fmt.Errorf("contains a control character")
	}
	if strings.ContainsAny(line, " \t") {
		return h, fmt.Errorf("contains white space; %s", lineForm)
	}
	if isLocal(line) {
		return h, fmt.Errorf("%q (this machine, reached without SSH) is written alone, in lower case: it takes no user or port, its steps run as the deployer's own user or DEPLOY_LOCAL_USER", localName)
	}
	rest := line
	if user, after, ok := strings.Cut(line, "@"); ok {
		if err := validUser(user); err != nil {
			return h, err
		}
		h.User, rest = user, after
	}
	addr, port, err := splitHostPort(rest)
	if err != nil {
		return h, err
	}
	if port != "" {
		if h.Port, err = parsePort(port); err != nil {
			return h, err
		}
	}
	h.Addr = addr
	return h, nil
}

// isLocal reports whether line names "local" in another way than the
// exact line: with a user or a port ("deploy@local", "local:22") or in
// other case ("LOCAL"). Those are refused rather than taken as an SSH host
// of that name; a machine really called that is listed by its full name
// or its address.
func isLocal(line string) bool {
	if _, after, ok := strings.Cut(line, "@"); ok {
		line = after
	}
	host, _, _ := strings.Cut(line, ":")
	return strings.EqualFold(host, localName)
}

// splitHostPort splits host[:port] or [ipv6][:port] and checks the host.
func splitHostPort(s string) (addr, port string, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", fmt.Errorf("missing ']' after the IPv6 address; %s", hostsForm)
		}
		addr, after := s[1:end], s[end+1:]
		if after != "" {
			var ok bool
			if port, ok = strings.CutPrefix(after, ":"); !ok {
				return "", "", fmt.Errorf("unexpected %q after ']'; %s", after, hostsForm)
			}
			if port == "" {
				return "", "", fmt.Errorf("empty port after ':'; %s", hostsForm)
			}
		}
		ip, err := netip.ParseAddr(addr)
		if err != nil || !ip.Is6() {
			return "", "", fmt.Errorf("%q in brackets is not an IPv6 address; %s", addr, hostsForm)
		}
		return addr, port, nil
	}
	switch strings.Count(s, ":") {
	case 0:
		addr = s
	case 1:
		addr, port, _ = strings.Cut(s, ":")
		if port == "" {
			return "", "", fmt.Errorf("empty port after ':'; %s", hostsForm)
		}
	default:
		if _, err := netip.ParseAddr(s); err == nil {
			return "", "", fmt.Errorf("write IPv6 addresses in brackets: [%s] or [%s]:22", s, s)
		}
		return "", "", fmt.Errorf("too many ':' (IPv6 addresses go in brackets); %s", hostsForm)
	}
	if err := validHostname(addr); err != nil {
		return "", "", err
	}
	return addr, port, nil
}

func validUser(u string) error {
	switch {
	case u == "":
		return fmt.Errorf("empty user before '@'; %s", hostsForm)
	case len(u) > 32:
		return fmt.Errorf("user %.10q… is longer than 32 characters", u)
	case !userRE.MatchString(u):
		return fmt.Errorf("user %q is not a valid login name (letters, digits, _ . -, not starting with a digit, '.' or '-')", u)
	}
	return nil
}

// validHostname accepts an IPv4 address or an RFC 1123 host name.
func validHostname(s string) error {
	if s == "" {
		return fmt.Errorf("no host; %s", hostsForm)
	}
	if len(s) > 253 {
		return fmt.Errorf("host name is longer than 253 characters")
	}
	labels := strings.Split(s, ".")
	if digitRE.MatchString(labels[len(labels)-1]) {
		// Only an IPv4 address may end with a numeric label.
		if ip, err := netip.ParseAddr(s); err != nil || !ip.Is4() {
			return fmt.Errorf("%q is not a valid IPv4 address", s)
		}
		return nil
	}
	for _, l := range labels {
		if len(l) > 63 {
			return fmt.Errorf("host name %q has a part longer than 63 characters", s)
		}
		if !labelRE.MatchString(l) {
			return fmt.Errorf("%q is not a valid host name (letters, digits and '-' in dot-separated parts, no '-' at either end of a part); %s", s, hostsForm)
		}
	}
	return nil
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || !digitRE.MatchString(s) || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", s)
	}
	return n, nil
}

// hostKey identifies a host for finding duplicates: host names are
// case-insensitive and IP addresses are compared in canonical form.
func hostKey(h deploy.Host) string {
	addr := strings.ToLower(h.Addr)
	if ip, err := netip.ParseAddr(h.Addr); err == nil {
		addr = ip.String()
	}
	return deploy.Host{User: h.User, Addr: addr, Port: h.Port}.String()
}
