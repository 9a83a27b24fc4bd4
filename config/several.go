package config

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// several checks the variables of several apps (DEPLOY_APPS_DIR,
// DEPLOY_PROMOTE_FROM) and of several deployers (DEPLOY_DATABASE_URL,
// DEPLOY_POLL_INTERVAL, DEPLOY_NODE_NAME).
func (v *validator) several() {
	c := v.c
	if v.on("DEPLOY_APPS_DIR") && c.AppsDir != "" {
		if hasControl(c.AppsDir) {
			v.add("DEPLOY_APPS_DIR: %q contains a control character; name the folder of app files, e.g. /etc/pushdeploy/apps", c.AppsDir)
		} else {
			v.expand("DEPLOY_APPS_DIR", &c.AppsDir)
		}
	}
	if v.on("DEPLOY_PROMOTE_FROM") && c.PromoteFrom != "" {
		switch {
		case !appNameRE.MatchString(c.PromoteFrom):
			v.add("DEPLOY_PROMOTE_FROM: %q is not an app name (%s)", c.PromoteFrom, appNameForm)
		case v.scope == scopeAll && c.AppsDir == "":
			v.add("DEPLOY_PROMOTE_FROM is set, but there is one app only (DEPLOY_APPS_DIR is empty): an app promotes from another app of DEPLOY_APPS_DIR; unset it, or set DEPLOY_APPS_DIR (docs/apps.md)")
		}
	}
	if v.on("DEPLOY_POLL_INTERVAL") {
		switch d := c.PollInterval; {
		case d < 0:
			v.add("DEPLOY_POLL_INTERVAL: %s is negative; set how often to look at the branch, e.g. 5m, or 0 for never", d)
		case d > 0 && d < time.Second:
			v.add("DEPLOY_POLL_INTERVAL: %s is less than the minimum, 1s; set e.g. 1m, or 0 for never", d)
		}
	}
	if v.on("DEPLOY_DATABASE_URL") && c.DatabaseURL != "" {
		if msg := databaseURLProblem(c.DatabaseURL); msg != "" {
			v.add("DEPLOY_DATABASE_URL: %q %s", RedactDatabaseURL(c.DatabaseURL), msg)
		}
	}
	if v.on("DEPLOY_NODE_NAME") && c.NodeName != "" {
		if msg := nodeNameProblem(c.NodeName); msg != "" {
			v.add("DEPLOY_NODE_NAME: %s; name this deployer in a few printable characters, e.g. deploy1, or leave it empty for HOSTNAME:PID", msg)
		}
	}
}

// databaseURLForm is the form DEPLOY_DATABASE_URL takes, for messages.
const databaseURLForm = "postgres://USER:PASSWORD@HOST:5432/DB (characters such as @ : / ? # in the user or password %-encoded, e.g. %40 for @)"

// databaseURLProblem says what is wrong with a PostgreSQL connection URL,
// or "". It never quotes s: the message may be shown, and s holds a
// password.
func databaseURLProblem(s string) string {
	if hasControl(s) {
		return "contains a control character; write " + databaseURLForm
	}
	scheme, _, ok := strings.Cut(s, "://")
	if !ok || scheme != "postgres" && scheme != "postgresql" {
		return "is not a postgres:// or postgresql:// URL; write " + databaseURLForm
	}
	u, err := url.Parse(s)
	if err != nil {
		// url.Error quotes parts of s (an unencoded '/' in the password
		// makes the rest of it a "port"): say what to do instead.
		return "is not a valid URL; write " + databaseURLForm
	}
	// HOST[:PORT], or several of them between commas (a standby after
	// the primary): url.Parse reads only the last port.
	for _, hp := range strings.Split(u.Host, ",") {
		if msg := hostPortProblem(hp); msg != "" {
			return msg
		}
	}
	if u.Hostname() == "" && u.Query().Get("host") == "" {
		return "names no host; write " + databaseURLForm + " (a Unix socket: postgres:///DB?host=/var/run/postgresql)"
	}
	return ""
}

// hostPortProblem says what is wrong with one HOST[:PORT] of a connection
// URL, or "". It never quotes the host: a URL missing its @ has the
// password there.
func hostPortProblem(hp string) string {
	host, port := hp, ""
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 || end+1 < len(hp) && hp[end+1] != ':' {
			return "names an IPv6 host without its closing ]; write e.g. postgres://USER:PASSWORD@[::1]:5432/DB"
		}
		host, port = hp[:end+1], strings.TrimPrefix(hp[end+1:], ":")
	} else if i := strings.LastIndexByte(hp, ':'); i >= 0 {
		host, port = hp[:i], hp[i+1:]
	}
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		return "names a host with more than one ':'; write " + databaseURLForm + " (an IPv6 address in brackets: [::1]:5432)"
	}
	if port == "" {
		return ""
	}
	if strings.Trim(port, "0123456789") != "" {
		// Not quoted: "USER:PASSWORD," without its @ reads as a host and
		// port.
		return "names a port that is not a number; write " + databaseURLForm
	}
	if _, err := parsePort(port); err != nil {
		return fmt.Sprintf("port %q is not a number from 1 to 65535", port)
	}
	return ""
}

// RedactDatabaseURL returns s (a DEPLOY_DATABASE_URL) with the password
// replaced by xxxxx, in the user part or a password= parameter, whether s
// is a valid URL or not: the form to show in logs and messages.
// It errs on the side of hiding: a password may hold unencoded '@', '/',
// '?' or '#', so everything up to the last '@' but the user name is
// hidden, and so is a query that does not parse.
func RedactDatabaseURL(s string) string {
	// First every password= (and sslpassword=) parameter, up to the end:
	// its value may hold a raw '@' or '&' that the rest would misread.
	s = passwordParamRE.ReplaceAllString(s, "${1}xxxxx")
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return "xxxxx"
	}
	var user string
	at := strings.LastIndexByte(rest, '@')
	if at >= 0 {
		userinfo := rest[:at]
		rest = rest[at+1:]
		name, _, hasPassword := strings.Cut(userinfo, ":")
		user = name + "@"
		if hasPassword {
			user = name + ":xxxxx@"
		}
	}
	end := strings.IndexAny(rest, "?#")
	if end < 0 {
		end = len(rest)
	}
	authority, path, hasPath := strings.Cut(rest[:end], "/")
	if host, port, ok := strings.Cut(authority, ":"); ok && at < 0 && strings.Trim(port, "0123456789") != "" && !strings.HasPrefix(authority, "[") {
		// USER:PASSWORD without @HOST reads as a host and port.
		authority = host + ":xxxxx"
	}
	out := scheme + "://" + user + authority
	if hasPath {
		out += "/" + path
	}
	switch tail := rest[end:]; {
	case tail == "":
	case tail[0] == '?' && !strings.Contains(tail, "#"):
		out += "?" + redactQuery(tail[1:])
	default:
		out += tail[:1] + "xxxxx"
	}
	return out
}

// passwordParamRE matches a password parameter of a connection URL and
// everything after it.
var passwordParamRE = regexp.MustCompile(`(?is)(password=).*$`)

// redactQuery hides the password= and sslpassword= parameters of a
// connection URL's query.
func redactQuery(raw string) string {
	q, err := url.ParseQuery(raw)
	if err != nil {
		// A pair that does not parse is left out of q: hide it all.
		return "xxxxx"
	}
	changed := false
	for k := range q {
		if strings.Contains(strings.ToLower(k), "password") {
			q.Set(k, "xxxxx")
			changed = true
		}
	}
	if !changed {
		return raw
	}
	return q.Encode()
}

// nodeNameProblem says what is wrong with a deployer's name, or "".
func nodeNameProblem(s string) string {
	switch {
	case !utf8.ValidString(s):
		return "not valid UTF-8"
	case utf8.RuneCountInString(s) > 64:
		return fmt.Sprintf("%d characters is longer than 64", utf8.RuneCountInString(s))
	case strings.TrimSpace(s) != s:
		return fmt.Sprintf("%q starts or ends with white space", s)
	case strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }):
		return fmt.Sprintf("%q contains a character that is not printable", s)
	}
	return ""
}
