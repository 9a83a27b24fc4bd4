#!/usr/bin/env bash
# original.sh: the deploy script pushdeploy replaces, kept as the baseline
# that bench/deploy measures pushdeploy against. It does what the team's
# script did, host after host:
#
#   ssh -A host          (agent forwarding lends the deploy key to git)
#     git clone --single-branch --branch release REPO ROOT/releases/DATE-TIME
#     python3 -m venv venv
#     venv/bin/pip install -r requirements.txt
#     ln -sfn releases/DATE-TIME ROOT/current
#     the restart command
#
# and for a rollback, host after host: ln -sfn the release before current,
# then the restart command.
#
#   original.sh deploy
#   original.sh rollback
#
# Settings, from the environment (the names pushdeploy uses):
#   DEPLOY_HOSTS_FILE    one user@host or user@host:port per line (hosts.txt)
#   DEPLOY_REPO_URL      the repository the hosts clone from
#   DEPLOY_BRANCH        release
#   DEPLOY_ROOT          app (relative to the login's home, or absolute)
#   DEPLOY_SSH_KEY       the admin key that logs into the hosts
#   DEPLOY_GIT_KEY       the deploy key the hosts clone with
#   DEPLOY_KNOWN_HOSTS   host keys of the hosts (checked)
#   DEPLOY_HOST_KNOWN_HOSTS  known_hosts file on the hosts with the git
#                        server's key (~/.ssh/known_hosts; checked)
#   DEPLOY_PYTHON        python3
#   DEPLOY_RESTART_CMD   run with sh -c in the release, RELEASE_DIR set
#
# Each host's switch and restart are logged on stderr with the host's clock,
# as "<epoch seconds> switching|restarting|restarted ...".
set -euo pipefail

action=${1:-deploy}
hosts_file=${DEPLOY_HOSTS_FILE:-hosts.txt}
repo=${DEPLOY_REPO_URL:?DEPLOY_REPO_URL is not set}
branch=${DEPLOY_BRANCH:-release}
root=${DEPLOY_ROOT:-app}
ssh_key=${DEPLOY_SSH_KEY:?DEPLOY_SSH_KEY is not set}
git_key=${DEPLOY_GIT_KEY:?DEPLOY_GIT_KEY is not set}
known_hosts=${DEPLOY_KNOWN_HOSTS:-$HOME/.ssh/known_hosts}
host_known_hosts=${DEPLOY_HOST_KNOWN_HOSTS:-}
python=${DEPLOY_PYTHON:-python3}
restart_cmd=${DEPLOY_RESTART_CMD:-}
release=$(date -u +%Y%m%d%H%M%S)

case $action in
deploy | rollback) ;;
*)
	echo "usage: $0 deploy|rollback" >&2
	exit 2
	;;
esac

mapfile -t hosts < <(grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$hosts_file")

eval "$(ssh-agent -s)" >/dev/null
trap 'ssh-agent -k >/dev/null' EXIT
trap 'exit 1' INT TERM
ssh-add -q "$ssh_key" "$git_key" 2>/dev/null

# on_host LINE: runs the bash script on stdin on the host of the hosts-file
# line LINE.
on_host() {
	local target=$1 port=22
	if [[ $target =~ ^(.*):([0-9]+)$ ]]; then
		target=${BASH_REMATCH[1]} port=${BASH_REMATCH[2]}
	fi
	target=${target/[/}
	target=${target/]/}
	ssh -A -p "$port" \
		-o UserKnownHostsFile="$known_hosts" -o StrictHostKeyChecking=yes \
		-o BatchMode=yes -o ConnectTimeout=10 \
		"$target" bash -s
}

# The settings the host scripts need, as bash assignments.
settings() {
	declare -p root branch repo release python restart_cmd host_known_hosts
}

# Each script is one { } group, which bash reads whole before it runs it, so
# no command on the host can read the rest of the script from stdin.
deploy_on_host='{
set -euo pipefail
case $root in /*) ;; *) root=$HOME/$root ;; esac
host_known_hosts=${host_known_hosts:-$HOME/.ssh/known_hosts}
mkdir -p "$root/releases"
cd "$root/releases"
GIT_SSH_COMMAND="ssh -o UserKnownHostsFile=$host_known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes" \
	git clone --quiet --single-branch --branch "$branch" "$repo" "$release"
cd "$release"
"$python" -m venv venv
venv/bin/pip install -r requirements.txt
echo "$(date +%s.%N) switching current -> releases/$release" >&2
ln -sfn "releases/$release" "$root/current"
if [ -n "$restart_cmd" ]; then
	echo "$(date +%s.%N) restarting" >&2
	RELEASE_DIR=$root/releases/$release CURRENT_DIR=$root/current sh -c "$restart_cmd"
	echo "$(date +%s.%N) restarted" >&2
fi
} </dev/null'

rollback_on_host='{
set -euo pipefail
case $root in /*) ;; *) root=$HOME/$root ;; esac
cd "$root"
current=$(readlink current)
current=${current#releases/}
previous=$(ls -1 releases | awk -v cur="$current" "\$0 < cur" | tail -n 1)
if [ -z "$previous" ]; then
	echo "no release before $current" >&2
	exit 1
fi
echo "$(date +%s.%N) switching current -> releases/$previous" >&2
ln -sfn "releases/$previous" "$root/current"
if [ -n "$restart_cmd" ]; then
	echo "$(date +%s.%N) restarting" >&2
	cd "releases/$previous"
	RELEASE_DIR=$root/releases/$previous CURRENT_DIR=$root/current sh -c "$restart_cmd"
	echo "$(date +%s.%N) restarted" >&2
fi
} </dev/null'

started=$SECONDS
for host in "${hosts[@]}"; do
	echo "==> $host: $action" >&2
	if [ "$action" = deploy ]; then
		{ settings; echo "$deploy_on_host"; } | on_host "$host"
	else
		{ settings; echo "$rollback_on_host"; } | on_host "$host"
	fi
done
if [ "$action" = deploy ]; then
	echo "deployed $branch as $release to ${#hosts[@]} host(s) in $((SECONDS - started))s"
else
	echo "rolled back ${#hosts[@]} host(s) in $((SECONDS - started))s"
fi
