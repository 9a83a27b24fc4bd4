package config

import (
	"os"
	"os/user"
	"strconv"
)

// local checks DEPLOY_LOCAL_USER and what the pool may hold without it.
// The commands of the local host run the repository's code (its hooks,
// what pip builds, DEPLOY_RESTART_CMD). As the deployer's own user, that
// code can read everything the deployer can: the admin key, the env file,
// the deployer's process environment and agent. Next to SSH hosts, that is
// the key to all of them, so local is listed with SSH hosts only when its
// commands run as another user.
func (v *validator) local() {
	c := v.c
	hasLocal, hasSSH := false, false
	for _, h := range c.Hosts {
		if h.Local {
			hasLocal = true
		} else {
			hasSSH = true
		}
	}
	if c.LocalUser == "" {
		if hasLocal && hasSSH {
			v.add("DEPLOY_HOSTS_FILE: %s lists local together with SSH hosts, but the repository code local runs (hooks, pip, DEPLOY_RESTART_CMD) "+
				"would run as the user pushdeploy runs as, which can read DEPLOY_SSH_KEY, the key to the other hosts; "+
				"set DEPLOY_LOCAL_USER to the user local's commands run as, or list this machine as an SSH host (e.g. deploy@localhost)", c.HostsFile)
		}
		return
	}
	if msg := localUserProblem(c.LocalUser, os.Geteuid()); msg != "" {
		v.add("DEPLOY_LOCAL_USER: %s", msg)
		return
	}
	if len(c.Hosts) > 0 && !hasLocal {
		v.warn("DEPLOY_LOCAL_USER is set, but %s has no local line: it is not used", c.HostsFile)
	}
}

// localUserProblem says why the local host's commands cannot run as name
// when pushdeploy runs as euid, or "".
func localUserProblem(name string, euid int) string {
	if hasControl(name) {
		return "the user name contains a control character"
	}
	u, err := user.Lookup(name)
	if err != nil {
		return "no user " + strconv.Quote(name) + " on this machine; create it (e.g. useradd --system --create-home " + name + ") or name another"
	}
	switch uid, err := strconv.Atoi(u.Uid); {
	case err != nil:
		return "user " + name + " has uid " + strconv.Quote(u.Uid) + ", which is not a number"
	case uid == 0:
		return "user " + name + " is root: the local host's commands would keep every privilege; name a user without any"
	case uid == euid:
		return "user " + name + " is the user pushdeploy runs as: its commands could read everything pushdeploy can; name another user"
	case euid != 0:
		return "running the local host's commands as " + name + " needs pushdeploy to run as root (it is uid " + strconv.Itoa(euid) + ")"
	}
	return ""
}
