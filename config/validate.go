package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/pushdeploy/pushdeploy/deploy"
)

// validator gathers the problems and warnings of one Validate.
type validator struct {
	c        *Config
	scope    scope
	probs    problems
	warnings []string
}

// scope is which variables a validator checks.
type scope int

const (
	scopeAll    scope = iota // one app: every variable
	scopeServer              // DEPLOY_APPS_DIR's server: the server-only variables
	scopeApp                 // an app of DEPLOY_APPS_DIR: the others
)

// on reports whether the validator checks the variable key (DEPLOY_…).
// The checks keep the order of Validate whatever the scope.
func (v *validator) on(key string) bool {
	switch v.scope {
	case scopeServer:
		return mustVariable(key).server
	case scopeApp:
		return !mustVariable(key).server
	}
	return true
}

func (v *validator) add(format string, args ...any) { v.probs.add(format, args...) }

func (v *validator) warn(format string, args ...any) {
	v.warnings = append(v.warnings, fmt.Sprintf(format, args...))
}

// Validate checks every value, reads the files the configuration names and
// fills SSHKeyPEM, GitKeyPEM and Hosts. The local paths DEPLOY_SSH_KEY,
// DEPLOY_GIT_KEY, DEPLOY_KNOWN_HOSTS, DEPLOY_HOSTS_FILE and DEPLOY_DATA_DIR
// are rewritten with a leading ~/ expanded to $HOME.
//
// It reports every problem at once, as an *Error. It checks nothing that
// only one command needs (such as serve's webhook secret): the commands do.
func (c *Config) Validate() (warnings []string, err error) {
	return c.validate(scopeAll)
}

func (c *Config) validate(s scope) (warnings []string, err error) {
	v := &validator{c: c, scope: s}
	v.values()
	v.numbers()
	v.lists()
	v.urls()
	v.bitbucket()
	v.files()
	if v.on("DEPLOY_LOCAL_USER") {
		v.local()
	}
	v.several()
	return v.warnings, v.probs.err()
}

func (v *validator) values() {
	if v.on("DEPLOY_REPO_URL") {
		v.target()
	}
	c := v.c
	if v.on("DEPLOY_LISTEN") {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			v.add("DEPLOY_LISTEN: %q is not host:port (examples: :8080, 127.0.0.1:8080, [::1]:8080)", c.Listen)
		}
	}
	if v.on("DEPLOY_WEBHOOK_REPO") {
		v.behaviour()
	}
}

// target checks what is deployed where: the repository, branch, root,
// login user and interpreter.
func (v *validator) target() {
	c := v.c
	if c.RepoURL == "" {
		v.add("%s", requiredProblem(mustVariable("DEPLOY_REPO_URL")))
	} else if u, err := deploy.ParseRepoURL(c.RepoURL); err == nil {
		if u.Transport == "file" && c.Fetch == "clone" && !path.IsAbs(u.Path) {
			// git on a host runs in <root>/.repo, as the login user.
			v.add("DEPLOY_REPO_URL: %q is a relative local path: the deployer reads it from its own folder (or home), but each host from its own; write an absolute path, or set DEPLOY_FETCH=push", u)
		}
	} else {
		// Read as git reads it, by the same code that resolves it; the
		// message shows no password.
		var ue *deploy.RepoURLError
		if errors.As(err, &ue) {
			v.add("DEPLOY_REPO_URL: %q: %s", ue.URL, ue.Reason)
		} else {
			v.add("DEPLOY_REPO_URL: %v", err)
		}
	}
	if err := deploy.ValidBranch(c.Branch); err != nil {
		v.add("DEPLOY_BRANCH: %v; set the name of the release branch, e.g. release", err)
	}
	if err := remotePath(c.Root); err != nil {
		v.add("DEPLOY_ROOT: %v", err)
	}
	if err := validUser(c.SSHUser); err != nil {
		v.add("DEPLOY_SSH_USER: %v", err)
	}
	switch {
	case c.Python == "":
		v.add("DEPLOY_PYTHON is empty; set the interpreter on the hosts, e.g. python3 or /opt/python3.12/bin/python3")
	case hasControl(c.Python) || strings.HasPrefix(c.Python, "-"):
		v.add("DEPLOY_PYTHON: %q is not a command name or path", c.Python)
	}
}

// behaviour checks how a deployment goes: the webhook's repository, the
// rollback, the restart batches and the fetch.
func (v *validator) behaviour() {
	c := v.c
	if c.WebhookRepo != "" && (hasControl(c.WebhookRepo) || strings.ContainsAny(c.WebhookRepo, " \t")) {
		v.add("DEPLOY_WEBHOOK_REPO: %q is not a repository full name (e.g. team/app)", c.WebhookRepo)
	}
	if c.RollbackOnFailure != "host" && c.RollbackOnFailure != "all" {
		v.add("DEPLOY_ROLLBACK_ON_FAILURE: %q is neither host nor all", c.RollbackOnFailure)
	}
	if _, err := deploy.ParseRestartBatch(c.RestartBatch); err != nil {
		v.add("DEPLOY_RESTART_BATCH: %v; set how many hosts restart at once, e.g. 2, or 25%% of the pool", err)
	}
	if c.Fetch != "clone" && c.Fetch != "push" {
		v.add("DEPLOY_FETCH: %q is neither clone nor push", c.Fetch)
	}
}

func (v *validator) numbers() {
	c := v.c
	for _, n := range []struct {
		key   string
		value int
	}{
		{"DEPLOY_APP_PROCESSES", c.AppProcesses},
		{"DEPLOY_APP_THREADS", c.AppThreads},
		{"DEPLOY_KEEP_RELEASES", c.KeepReleases},
		{"DEPLOY_PARALLEL", c.Parallel},
	} {
		if v.on(n.key) && n.value < 1 {
			v.add("%s: %d is less than 1", n.key, n.value)
		}
	}
	if v.on("DEPLOY_RATE_LIMIT") {
		if c.RateLimit < 0 {
			v.add("DEPLOY_RATE_LIMIT: %d is negative (0 means no limit)", c.RateLimit)
		}
		if c.RateBurst < 1 {
			v.add("DEPLOY_RATE_BURST: %d is less than 1", c.RateBurst)
		}
		if c.WebhookMaxBody < 1<<10 || c.WebhookMaxBody > 32<<20 {
			v.add("DEPLOY_WEBHOOK_MAX_BODY: %d bytes is not from 1024 (1 KiB) to 33554432 (32 MiB)", c.WebhookMaxBody)
		}
		if c.HistoryDays < 0 {
			v.add("DEPLOY_HISTORY_DAYS: %d is negative (0 keeps all history)", c.HistoryDays)
		}
	}
	for _, d := range []struct {
		key   string
		value time.Duration
	}{
		{"DEPLOY_STEP_TIMEOUT", c.StepTimeout},
		{"DEPLOY_HEALTH_TIMEOUT", c.HealthTimeout},
		{"DEPLOY_CONNECT_TIMEOUT", c.ConnectTimeout},
		{"DEPLOY_LOCK_TIMEOUT", c.LockTimeout},
	} {
		if v.on(d.key) && d.value <= 0 {
			v.add("%s: %s is not a positive duration (examples: 90s, 10m)", d.key, d.value)
		}
	}
}

func (v *validator) lists() {
	if v.on("DEPLOY_SHARED_PATHS") {
		v.sharedPaths()
	}
	if v.on("DEPLOY_TRUSTED_PROXIES") {
		v.c.TrustedProxies = cleanList(v.c.TrustedProxies)
		v.networks("DEPLOY_WEBHOOK_ALLOW_CIDRS", v.c.WebhookAllowCIDRs)
		v.networks("DEPLOY_TRUSTED_PROXIES", v.c.TrustedProxies)
	}
}

func (v *validator) sharedPaths() {
	for _, p := range v.c.SharedPaths {
		// A trailing "/" marks a folder (docs/shared-paths.md).
		bare := strings.TrimSuffix(p, "/")
		switch err := remotePath(bare); {
		case err != nil:
			v.add("DEPLOY_SHARED_PATHS: %v", err)
		case path.IsAbs(bare) || bare == "." || path.Clean(bare) != bare:
			v.add("DEPLOY_SHARED_PATHS: %q must be a path relative to the release folder, in clean form (e.g. media, logs/ or config/local.py)", p)
		}
	}
}

// networks checks a list of CIDR prefixes.
func (v *validator) networks(key string, list []string) {
	for _, s := range list {
		if _, err := netip.ParsePrefix(s); err != nil {
			hint := ""
			if ip, err := netip.ParseAddr(s); err == nil {
				hint = fmt.Sprintf("; for one address write %s/%d", s, ip.BitLen())
			}
			v.add("%s: %q is not a network in CIDR form (e.g. 10.0.0.0/8, 2001:db8::/32)%s", key, s, hint)
		}
	}
}

func (v *validator) urls() {
	for _, u := range []struct{ key, value string }{
		{"DEPLOY_HEALTH_URL", v.c.HealthURL},
		{"DEPLOY_NOTIFY_URL", v.c.NotifyURL},
		{"DEPLOY_PUBLIC_URL", v.c.PublicURL},
		{"DEPLOY_BITBUCKET_API_URL", v.c.BitbucketAPIURL},
	} {
		if u.value == "" || !v.on(u.key) {
			continue
		}
		if err := httpURL(u.value); err != nil {
			v.add("%s: %v", u.key, err)
		}
	}
}

// remotePath checks a path used on the hosts.
func remotePath(p string) error {
	if err := deploy.ValidPath(p); err != nil {
		return err
	}
	if strings.HasPrefix(p, "-") {
		return fmt.Errorf("path %q starts with '-'", p)
	}
	if strings.HasPrefix(p, "~") {
		return fmt.Errorf("path %q starts with '~', which is not expanded on the hosts; a relative path is already relative to the login user's home", p)
	}
	return nil
}

// httpURL checks an http(s) URL; {host} may stand for the host name.
func httpURL(s string) error {
	u, err := url.Parse(strings.ReplaceAll(s, "{host}", "host.invalid"))
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a URL", s)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q is not an http:// or https:// URL", s)
	case u.Host == "":
		return fmt.Errorf("%q has no host", s)
	}
	return nil
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

func mustVariable(key string) variable {
	v, ok := lookupVariable(key)
	if !ok {
		panic("config: no variable " + key)
	}
	return v
}
