# git.sh runs a git command ("$@") that reaches the git server, with the
# server's host keys (as verified by the deployer, on stdin) as the only
# ones ssh accepts. The keys go to a private temporary file with a plain
# name: ssh splits UserKnownHostsFile at spaces and expands % in it, so a
# path under an arbitrary root folder could not be passed safely.
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
