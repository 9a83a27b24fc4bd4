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
	GIT_SSH_COMMAND="ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$kh"
	export GIT_SSH_COMMAND
fi
GIT_TERMINAL_PROMPT=0 "$@"
