# git.sh runs a git command ("$@") that reaches the git server. It reads
# on stdin (deploy's hostGit) the password of an http(s) repository URL on
# the first line (empty for none), then the server's host keys as the
# deployer verified them, the only ones ssh may accept.
#
# The password stays off every command line and out of every file: it is
# in the environment of this script's git commands only (readable by this
# user alone), and a credential helper given in the same way hands it to
# git. The empty credential.helper before it drops the helpers of the
# host's own configuration, which could store it (GIT_CONFIG_COUNT: git
# 2.31 and later).
IFS= read -r password || true
if [ -n "$password" ]; then
	PUSHDEPLOY_GIT_PASSWORD=$password
	GIT_CONFIG_COUNT=2
	GIT_CONFIG_KEY_0=credential.helper GIT_CONFIG_VALUE_0=
	GIT_CONFIG_KEY_1=credential.helper
	# shellcheck disable=SC2016,SC2089 # a program for git to run: its $ and quotes are for its own shell
	GIT_CONFIG_VALUE_1='!f() { if [ "$1" = get ]; then printf "password=%s\n" "$PUSHDEPLOY_GIT_PASSWORD"; fi; }; f'
	# shellcheck disable=SC2090 # exported as it is, for git to read
	export PUSHDEPLOY_GIT_PASSWORD GIT_CONFIG_COUNT GIT_CONFIG_KEY_0 GIT_CONFIG_VALUE_0 GIT_CONFIG_KEY_1 GIT_CONFIG_VALUE_1
fi
unset password
# The keys go to a private temporary file with a plain name: ssh splits
# UserKnownHostsFile at spaces and expands % in it, so a path under an
# arbitrary root folder could not be passed safely.
kh=$(mktemp /tmp/pushdeploy-known_hosts.XXXXXXXXXX) || exit 1
trap 'rm -f "$kh"' EXIT
trap 'rm -f "$kh"; exit 143' HUP INT TERM
cat >"$kh"
if [ -s "$kh" ]; then
	# Nothing else may vouch for a key: not the host's own known_hosts
	# files (/etc/ssh/ssh_known_hosts, or whatever a configuration names),
	# not SSHFP records in DNS, not a KnownHostsCommand (OpenSSH 8.5 and
	# later; an older ssh refuses the option, so it is asked first).
	# Options on the command line win over every configuration file.
	GIT_SSH_COMMAND="ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$kh -o GlobalKnownHostsFile=/dev/null -o VerifyHostKeyDNS=no"
	if ssh -G -o KnownHostsCommand=none pushdeploy.invalid >/dev/null 2>&1; then
		GIT_SSH_COMMAND="$GIT_SSH_COMMAND -o KnownHostsCommand=none"
	fi
	export GIT_SSH_COMMAND
fi
GIT_TERMINAL_PROMPT=0 "$@"
