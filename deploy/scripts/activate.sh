# activate.sh activates the new release on a host once current points at
# it, in one command (deploy's activate): the restart command, then, with
# a health check, a wait for the deployer's "go" (it checks the health
# itself, over HTTP), the release's after-switch hook, and retention. Each
# is marked as a step of its own, as in phase.sh. Every step holds the
# active file shared, as every command of a deployment does, and runs
# under coreutils timeout.
# Its stdin: the nonce, then (with a health check) the deployer's line.
# $1 root, $2 release name, $3 the step timeout (seconds), $4 the restart
# command ("": none), $5 yes|no (wait for "go" after the restart), $6 how
# many releases to keep (0: all), $7 the release current pointed at before
# ("": none; retention keeps it, for a revert), $8 and $9 the scripts
# hook.sh and retention.sh, $10 steps.sh, then the restart command's
# environment (KEY=value).
exec 2>&1
# shellcheck disable=SC2034 # also read by steps.sh, which this script evals
root=$1 name=$2 secs=$3 restart=$4 health=$5 keep=$6 prev=$7 hook_sh=$8 retention_sh=$9 steps_sh=${10}
shift 10
# shellcheck disable=SC2034 # also read by steps.sh, which this script evals
IFS= read -r nonce || exit 1
eval "$steps_sh" # mark and run

rel="$root/releases/$name"
if [ -n "$restart" ]; then
	run restart "$rel" yes env "$@" sh -c "$restart" || exit 1
fi
if [ "$health" = yes ]; then
	mark wait
	IFS= read -r l || exit 0
	[ "$l" = go ] || exit 0
fi
run after-switch "$rel" yes env "$@" sh -c "$hook_sh" sh after-switch || exit 1
if [ "$keep" -gt 0 ]; then
	run retention "$root" yes sh -c "$retention_sh" sh "$root" "$keep" "$name" "$prev"
fi
mark activated
