package config

import (
	"fmt"
	"io"
	"strings"
)

// groups orders the variables of deploy.env.example (and of the deploy.env
// `pushdeploy init` writes) by what they are about. A variable missing here
// lands in "Other" (TestStarterGroups says which).
var groups = []struct {
	title string
	keys  []string
}{
	{"The app, its hosts and the keys", []string{
		"REPO_URL", "BRANCH", "PROMOTE_FROM", "HOSTS_FILE", "ROOT", "SSH_USER", "SSH_KEY", "SSH_KEY_PASSPHRASE",
		"KNOWN_HOSTS", "GIT_KEY", "GIT_KEY_PASSPHRASE", "SSH_JUMP", "LOCAL_USER",
	}},
	{"Releases on the hosts", []string{
		"PYTHON", "RESTART_CMD", "APP_PROCESSES", "APP_THREADS", "KEEP_RELEASES", "SHARED_PATHS",
		"VENV_REUSE", "FETCH", "PARALLEL", "RESTART_BATCH",
	}},
	{"Health checks and time limits", []string{
		"HEALTH_URL", "HEALTH_TIMEOUT", "ROLLBACK_ON_FAILURE", "STEP_TIMEOUT", "CONNECT_TIMEOUT", "LOCK_TIMEOUT",
	}},
	{"serve: webhooks, API and status page", []string{
		"LISTEN", "WEBHOOK_SECRET", "API_TOKEN", "WEBHOOK_INSECURE", "WEBHOOK_REPO", "WEBHOOK_ALLOW_CIDRS",
		"WEBHOOK_MAX_BODY", "RATE_LIMIT", "RATE_BURST", "TRUSTED_PROXIES", "STATUS_PUBLIC", "PUBLIC_URL",
		"POLL_INTERVAL",
	}},
	{"The deployer's own state", []string{"DATA_DIR", "HISTORY_DAYS", "DATABASE_URL", "NODE_NAME", "APPS_DIR"}},
	{"Notifications", []string{"NOTIFY_URL", "BITBUCKET_TOKEN", "BITBUCKET_API_URL"}},
}

const starterHeader = `# pushdeploy configuration: every variable, grouped, with its default.
#
# Save as deploy.env (read when it exists) or pass --env-file FILE; ` + "`pushdeploy init`" + `
# writes this file for you. Set the uncommented lines (required); every other
# variable is shown commented out with its default: uncomment a line to change
# it. Variables set in the real environment win over the file. Values are read
# literally: no $ expansion, as systemd's EnvironmentFile= reads them.
# Reference: docs/configuration.md.
#
# Several apps (DEPLOY_APPS_DIR, docs/apps.md): the variables marked
# (server) are the server's and stay here; every other one may also be set
# per app, in the app's NAME.env, over the value here.
#
# Generated from config.Config; after changing it, run
#   go test ./config -run TestExampleFile -update
`

// mustSet tells whether the starter leaves v uncommented: a required
// variable, or one required but in a case the description names.
func mustSet(v variable) bool {
	return v.required || strings.HasPrefix(v.desc, "required unless")
}

// Usage writes every variable, its meaning and its default, grouped: the
// content of deploy.env.example (checked by a test) and of the deploy.env
// `pushdeploy init` writes. Only the required variables are uncommented
// (and empty); the others are commented out with their defaults, so a copy
// pins nothing and later defaults still apply.
func Usage(w io.Writer) error {
	var b strings.Builder
	b.WriteString(starterHeader)
	placed := map[string]bool{}
	write := func(title string, vars []variable) {
		if len(vars) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n## %s\n", title)
		for _, v := range vars {
			b.WriteString("\n# ")
			if v.required {
				b.WriteString("required: ")
			}
			if v.server {
				b.WriteString("(server) ")
			}
			b.WriteString(v.desc + "\n")
			if mustSet(v) {
				fmt.Fprintf(&b, "%s=\n", v.key)
			} else {
				fmt.Fprintf(&b, "# %s=%s\n", v.key, v.def)
			}
			placed[v.key] = true
		}
	}
	for _, g := range groups {
		var vars []variable
		for _, k := range g.keys {
			if v, ok := lookupVariable(Prefix + "_" + k); ok {
				vars = append(vars, v)
			}
		}
		write(g.title, vars)
	}
	var other []variable
	for _, v := range variables {
		if !placed[v.key] {
			other = append(other, v)
		}
	}
	write("Other", other)
	_, err := io.WriteString(w, b.String())
	return err
}
