package deploy

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// RepoURL is a repository URL (DEPLOY_REPO_URL) read the way git reads it
// (git's connect.c and transport.c), so that the deployer asks the server
// for exactly what git on a host asks for: the same login, the same
// address and the same path. ParseRepoURL is the one place that reads such
// a URL; everything that talks to the repository starts from its result.
type RepoURL struct {
	// Transport is "ssh" (ssh://, git+ssh://, ssh+git:// and scp-like
	// [user@]host:path), "git" (git://), "file" (file:// and local paths),
	// "http" or "https".
	Transport string
	// User is the SSH login or the HTTP basic-auth user, decoded; empty
	// when the URL names none (SSH then logs in as the local user, as ssh
	// does).
	User string
	// Password is the HTTP basic-auth password, decoded. Only http(s) URLs
	// have one.
	Password string
	// Host is the server's name or address, IPv6 without brackets. Empty
	// for file.
	Host string
	// Port is the port the URL names; 0 when it names none.
	Port int
	// Path is what git asks the server for. For ssh, git and file it is
	// the argument git gives git-upload-pack: ~user/app.git for
	// ssh://host/~user/app.git, a path relative to the login's home for
	// scp-like host:app.git, the path as written for a local path (the
	// upload-pack run by git expands a leading ~ and resolves a relative
	// path from the current folder). For http(s) it is the URL's path and
	// query as written, still %-encoded.
	Path string

	raw string
}

// String returns the URL as written, with any password blanked out: the
// form to show in messages and logs.
func (u RepoURL) String() string { return RedactPassword(u.raw, u.raw) }

// WithoutPassword returns the URL as written less its password (the user
// stays): the form to hand to a program that gets the password another
// way.
func (u RepoURL) WithoutPassword() string {
	before, userinfo, after, ok := splitUserinfo(u.raw)
	if !ok {
		return u.raw
	}
	user, _, _ := strings.Cut(userinfo, ":")
	return before + user + "@" + after
}

// helperRE is git's remote helper syntax, <transport>::<address>
// (transport_get in transport.c).
var helperRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*::`)

// hostRE is the host names accepted besides IP addresses: what DNS and
// /etc/hosts names are made of. (OpenSSH refuses most other characters.)
var hostRE = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9._-]*[A-Za-z0-9_])?$`)

// ParseRepoURL reads s as git reads a repository URL. It accepts
//
//	ssh://[user@]host[:port]/path   also git+ssh:// and ssh+git://;
//	                                 /~/path and /~user/path go to git as ~/path, ~user/path
//	[user@]host:path                 scp-like: path relative to the login's home,
//	                                 ~/path, ~user/path or /absolute
//	[[user@]host:port]:path          scp-like with a port
//	git://host[:port]/path
//	file:///path, or a local path    (relative to the current folder, or ~/path)
//	https://[user[:password]@]host[:port]/path, and http://
//
// and refuses, with a message that says what to write instead, what git
// would refuse or read differently from what it looks like: remote helper
// syntax (x::…), unknown schemes, no host or no path, a port that is not
// 1-65535, a host or path starting with '-', a password in an SSH URL, an
// scp-like path git would cut at a '~' (host:a~b asks for ~b), and
// host:2222:path (git asks for the path "2222:path"; scp-like URLs take no
// port). Error messages show the URL without its password.
func ParseRepoURL(s string) (RepoURL, error) {
	u, err := parseRepoURL(s)
	if err != nil {
		return RepoURL{}, &RepoURLError{URL: RedactPassword(s, s), Reason: err.Error()}
	}
	u.raw = s
	return u, nil
}

// RepoURLError is a repository URL that ParseRepoURL refuses.
type RepoURLError struct {
	URL    string // as written, without its password
	Reason string // what is wrong, and what to write instead
}

func (e *RepoURLError) Error() string { return fmt.Sprintf("repository URL %q: %s", e.URL, e.Reason) }

func parseRepoURL(s string) (RepoURL, error) {
	switch {
	case s == "":
		return RepoURL{}, errors.New("empty")
	case hasControlChar(s):
		return RepoURL{}, errors.New("contains a control character")
	case helperRE.MatchString(s):
		return RepoURL{}, fmt.Errorf("git's remote helper syntax (%s…) is not supported; use an ssh://, https://, git:// or file:// URL, an scp-like user@host:path or a local path", s[:strings.Index(s, "::")+2])
	}
	scheme, rest, hasScheme := strings.Cut(s, "://")
	if !hasScheme {
		if isLocalPath(s) {
			return localURL(s)
		}
		return scpURL(s)
	}
	switch scheme {
	case "ssh", "git+ssh", "ssh+git", "git":
		// git %-decodes the whole URL before it reads anything else
		// (parse_connect_url in connect.c), user and host included.
		rest = gitURLDecode(rest)
		if hasControlChar(rest) {
			return RepoURL{}, errors.New("contains a control character once %-decoded")
		}
		transport := "ssh"
		if scheme == "git" {
			transport = "git"
		}
		return serverURL(transport, rest)
	case "file":
		rest = gitURLDecode(rest)
		if hasControlChar(rest) {
			return RepoURL{}, errors.New("contains a control character once %-decoded")
		}
		return fileURL(rest)
	case "http", "https":
		return httpURL(s)
	}
	return RepoURL{}, fmt.Errorf("scheme %q is not supported (ssh, https, http, git, file; lower-case)", scheme)
}

// isLocalPath is git's url_is_local_not_ssh: no ':' at all, or a '/'
// before the first one.
func isLocalPath(s string) bool {
	colon := strings.IndexByte(s, ':')
	slash := strings.IndexByte(s, '/')
	return colon < 0 || (slash >= 0 && slash < colon)
}

func localURL(s string) (RepoURL, error) {
	if strings.HasPrefix(s, "-") {
		return RepoURL{}, fmt.Errorf("starts with '-', which git refuses; for a local path write ./%s", s)
	}
	return RepoURL{Transport: "file", Path: s}, nil
}

// fileURL reads what follows file:// (already %-decoded). git ignores any
// host and takes the path from the first '/' on; pushdeploy refuses a host
// other than localhost, which is almost always a relative path written
// after file:// by mistake.
func fileURL(rest string) (RepoURL, error) {
	i := strings.IndexByte(rest, '/')
	if i < 0 {
		return RepoURL{}, errors.New("no path; write file:///absolute/path/app.git")
	}
	if host := rest[:i]; host != "" && host != "localhost" {
		return RepoURL{}, fmt.Errorf("file:// takes an absolute path, not a host: git would ignore %q and read %s; write file:///absolute/path or a plain local path", host, rest[i:])
	}
	return RepoURL{Transport: "file", Path: rest[i:]}, nil
}

// serverURL reads what follows ssh:// or git:// (already %-decoded as git
// does): the host part up to the first '/' outside brackets, then the path,
// where git turns /~ into ~.
func serverURL(transport, rest string) (RepoURL, error) {
	end := bracketEnd(rest)
	i := strings.IndexByte(rest[end:], '/')
	if i < 0 {
		return RepoURL{}, errors.New("no path after the host")
	}
	hostPart, path := rest[:end+i], rest[end+i:]
	if len(path) > 1 && path[1] == '~' {
		path = path[1:]
	}
	u, err := hostAndPort(transport, hostPart)
	if err != nil {
		return RepoURL{}, err
	}
	u.Path = path
	return u, nil
}

// scpURL reads an scp-like [user@]host:path, which git does not %-decode.
func scpURL(s string) (RepoURL, error) {
	end := bracketEnd(s)
	i := strings.IndexByte(s[end:], ':')
	if i < 0 {
		// Only an unclosed bracket gets here: git would read "[" as the
		// host. No host is ever written that way.
		return RepoURL{}, errors.New("no ':' after the bracketed host")
	}
	hostPart, path := s[:end+i], s[end+i+1:]
	switch {
	case path == "":
		return RepoURL{}, errors.New("no path after the ':'")
	case len(path) > 1 && path[1] == '~' && path[0] != '/':
		// connect.c drops the first character of such a path.
		return RepoURL{}, fmt.Errorf("git would ask for the path %q, not %q (it drops the first character of an scp-like path whose second is '~'); write the path as git should ask for it", path[1:], path)
	case len(path) > 1 && path[1] == '~':
		path = path[1:]
	case portPathRE.MatchString(path):
		port, rest, _ := strings.Cut(path, ":")
		return RepoURL{}, fmt.Errorf("scp-like URLs take no port: git would ask %s for the path %q; for port %s write [%s:%s]:%s",
			hostPart, path, port, hostPart, port, rest)
	}
	if strings.HasPrefix(path, "-") {
		return RepoURL{}, fmt.Errorf("path %q starts with '-', which git refuses", path)
	}
	u, err := hostAndPort("ssh", hostPart)
	if err != nil {
		return RepoURL{}, err
	}
	u.Path = path
	return u, nil
}

// portPathRE is an scp-like path that starts with what looks like a port.
var portPathRE = regexp.MustCompile(`^[0-9]{1,5}:`)

// bracketEnd is git's host_end: where the host part may end at the
// earliest, past a bracketed "[...]" or "user@[...]" at its start.
func bracketEnd(s string) int {
	start := 0
	if i := strings.Index(s, "@["); i >= 0 {
		start = i + 1
	}
	if strings.HasPrefix(s[start:], "[") {
		if j := strings.IndexByte(s[start+1:], ']'); j >= 0 {
			return start + 1 + j
		}
	}
	return 0
}

// hostAndPort reads [user@]host[:port], with the host or all of it
// possibly in brackets ([::1], [user@host:port]), as git's
// get_host_and_port and get_port do (the port follows the first ':'),
// then splits off the user at the last '@', as ssh does.
func hostAndPort(transport, s string) (RepoURL, error) {
	host, port := s, ""
	start := 0
	if i := strings.Index(s, "@["); i >= 0 {
		start = i + 1
	}
	bracketed := false
	if strings.HasPrefix(s[start:], "[") {
		if j := strings.IndexByte(s[start+1:], ']'); j >= 0 {
			end := start + 1 + j
			host, bracketed = s[:start]+s[start+1:end], true
			switch after := s[end+1:]; {
			case after == "" || after == ":":
			case after[0] == ':' && allDigits(after[1:]):
				port = after[1:]
			default:
				return RepoURL{}, fmt.Errorf("%q after the brackets of %q is not :port", after, s)
			}
		}
	}
	if port == "" {
		if i := strings.IndexByte(host, ':'); i >= 0 {
			switch rest := host[i+1:]; {
			case allDigits(rest):
				host, port = host[:i], rest
			case rest == "" && !bracketed:
				host = host[:i]
			}
		}
	}
	u := RepoURL{Transport: transport, Host: host}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return RepoURL{}, fmt.Errorf("port %q is not a number from 1 to 65535", port)
		}
		u.Port = n
	}
	if at := strings.LastIndexByte(host, '@'); at >= 0 {
		u.User, u.Host = host[:at], host[at+1:]
		switch {
		case u.User == "":
			return RepoURL{}, errors.New("empty user before '@'")
		case strings.HasPrefix(u.User, "-"):
			return RepoURL{}, fmt.Errorf("user %q starts with '-', which git refuses", u.User)
		case strings.Contains(u.User, ":"):
			return RepoURL{}, errors.New("an SSH URL takes no password (ssh would log in as a user whose name has a ':'); the deploy key (DEPLOY_GIT_KEY) logs in")
		case transport == "git":
			return RepoURL{}, errors.New("git:// URLs take no user")
		}
	}
	if err := validHost(u.Host); err != nil {
		return RepoURL{}, err
	}
	return u, nil
}

func allDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

func isPort(s string) bool {
	n, err := strconv.Atoi(s)
	return allDigits(s) && err == nil && n >= 1 && n <= 65535
}

func validHost(h string) error {
	switch {
	case h == "":
		return errors.New("no host")
	case strings.HasPrefix(h, "-"):
		return fmt.Errorf("host %q starts with '-', which git refuses", h)
	case strings.Contains(h, ":"):
		if _, err := netip.ParseAddr(h); err != nil {
			return fmt.Errorf("host %q is neither a name nor an IP address (write IPv6 addresses in brackets: [2001:db8::1])", h)
		}
	case !hostRE.MatchString(h):
		return fmt.Errorf("host %q has characters other than letters, digits and . - _", h)
	}
	return nil
}

func httpURL(s string) (RepoURL, error) {
	pu, err := url.Parse(s)
	if err != nil {
		// url.Parse quotes the whole URL; say only what is wrong.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return RepoURL{}, fmt.Errorf("not a valid URL: %v", err)
	}
	u := RepoURL{Transport: pu.Scheme, Host: pu.Hostname()}
	switch {
	case pu.Opaque != "":
		return RepoURL{}, errors.New("no // after the scheme")
	case pu.Fragment != "":
		return RepoURL{}, errors.New("has a #fragment, which is no part of a repository's address")
	}
	if err := validHost(u.Host); err != nil {
		return RepoURL{}, err
	}
	if p := pu.Port(); p != "" {
		if !isPort(p) {
			return RepoURL{}, fmt.Errorf("port %q is not a number from 1 to 65535", p)
		}
		u.Port, _ = strconv.Atoi(p)
	}
	if pu.User != nil {
		u.User = pu.User.Username()
		u.Password, _ = pu.User.Password()
		// git's credential protocol is one line a value: it cannot send
		// these, and hosts get the password on a line (git.sh).
		if hasControlChar(u.User) || hasControlChar(u.Password) {
			return RepoURL{}, errors.New("the user or the password contains a control character once %-decoded")
		}
	}
	u.Path = pu.EscapedPath()
	if pu.RawQuery != "" || pu.ForceQuery {
		u.Path += "?" + pu.RawQuery
	}
	return u, nil
}

// gitURLDecode is git's url_decode: every %XX with two hex digits becomes
// that byte; anything else stays as it is.
func gitURLDecode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b.WriteByte(byte(v))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func hasControlChar(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// splitUserinfo finds the userinfo of a URL with a scheme: the text
// between "://" and the last '@' before the path. ok is false when there
// is none.
func splitUserinfo(s string) (before, userinfo, after string, ok bool) {
	i := strings.Index(s, "://")
	if i < 0 {
		return "", "", "", false
	}
	authority := s[i+3:]
	if end := strings.IndexAny(authority, "/?#"); end >= 0 {
		authority = authority[:end]
	}
	at := strings.LastIndexByte(authority, '@')
	if at < 0 {
		return "", "", "", false
	}
	return s[:i+3], authority[:at], s[i+3+at+1:], true
}

// RedactPassword returns text with the password of repoURL blanked out
// ("xxxxx") wherever it appears: as written, %-decoded, and %-encoded
// again the way Go's net/url writes it. It is the one redaction of the
// repository's password: every message, log line and report that may show
// the URL, or an error that may quote it, passes through it. repoURL need
// not be valid; a URL without a password leaves text as it is.
func RedactPassword(text, repoURL string) string {
	var pass string
	if _, userinfo, _, ok := splitUserinfo(repoURL); ok {
		_, pass, _ = strings.Cut(userinfo, ":")
	} else if at := strings.IndexByte(repoURL, '@'); at >= 0 && !strings.Contains(repoURL[:at], "/") {
		// scp-like user:password@host:path, which git would read
		// otherwise; refused by ParseRepoURL, but still not shown.
		_, pass, _ = strings.Cut(repoURL[:at], ":")
	}
	if pass == "" {
		return text
	}
	forms := []string{pass}
	if dec, err := url.PathUnescape(pass); err == nil {
		forms = append(forms, dec, strings.TrimPrefix(url.UserPassword("", dec).String(), ":"), url.PathEscape(dec))
	}
	forms = append(forms, gitURLDecode(pass))
	// Longest first, so that no form is cut short by another it starts
	// with.
	slices.SortFunc(forms, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	var pairs []string
	for _, f := range slices.Compact(forms) {
		if f != "" {
			pairs = append(pairs, f, "xxxxx")
		}
	}
	return strings.NewReplacer(pairs...).Replace(text)
}

// RedactError returns err with the password of repoURL blanked out of its
// message (RedactPassword); errors.Is and errors.As still see the original.
func RedactError(err error, repoURL string) error {
	if err == nil {
		return nil
	}
	msg := RedactPassword(err.Error(), repoURL)
	if msg == err.Error() {
		return err
	}
	return &redactedError{msg: msg, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
