# phase.sh is a host's whole deployment in one command (deploy's
# prepareRun), so that its steps cost no round trip each. It marks where
# each step begins and ends on stdout (a line "\036pushdeploy NONCE begin
# STEP", then the step's own output, then "... end STEP STATUS"), with a
# nonce the deployer chose for this run and sends on stdin: no output of
# the repository's code can forge a mark.
#
# At once, holding no lock (it touches no release folder and no current):
#   prepare  creates the root folder, checks the tools and the python, and
#            reports the absolute root ("root PATH");
#   fetch    brings the host's mirror up to date (mirror.sh inside git.sh;
#            the mirror has a lock of its own), when $11 is fetch, then
#            marks "fetched" (the end of a lent deploy key's loan);
#   pip-copy makes the host's compiled copy of pip for the venvs, when
#            missing (pipcopy.sh).
# Then it marks "wait" and waits for a line from the deployer, which sends
# them in the order DEPLOY_PARALLEL gives:
#   lock     takes the deployment lock (lock.sh's rules) and removes what
#            an interrupted deploy left (half releases, temporary links),
#            then waits again;
#   build    takes the lock unless held, then checkout (unpack.sh; in push
#            mode it marks "upload" and waits for a line while the
#            deployer streams the files with a command of its own), venv,
#            pip, shared and before-switch, and marks "built".
# Once built, it waits again, for the deployer's lines of the switch and
# activate phases (a round trip each, not a command each):
#   switch   points current at the new release (switch.sh), as step
#            switch, then marks "switched PREV": what current pointed at
#            before ("" on a first deploy);
#   activate the restart command (step restart, when set), then, with a
#            health check, marks "wait" and waits for "go" (the deployer
#            checks the health itself, over HTTP), then the release's
#            after-switch hook (step after-switch), and marks
#            "activated"; then retention (step retention, while the
#            deployer activates the next host; a failed retention does
#            not stop it), and marks "retained".
# A failed step ends these too: the deployer puts the host back with
# commands of its own, while this script holds the lock.
# Every step of the build holds the active file shared, as every command of
# a deployment does (Command.Hold), and runs under coreutils timeout. The
# lock is held by the reader of its stdin, until the stdin closes (the
# deployer is done, or its connection died), even while a step runs on.
# Whatever happened, the script waits for that end ("held"). The end of
# its stdin, or a line "stop", before a step stops it there: nothing more
# is built, and the deployer removes what was.
#
# Its stdin: the nonce; git.sh's input (the password line, then a line with
# the number of host-key lines, then those lines); then the deployer's
# lines.
# $1 root, $2 release name, $3 python, $4 the tools needed, $5 the step
# timeout (seconds), $6 how long to wait for the lock (seconds), $7 and $8
# who holds it (lock.sh's $3 and $4), $9 yes|no (venv reuse), $10 the
# commit, $11 how its files come: fetch (fetched and checked out here;
# a lent deploy key is lent until the fetch has ended, and SSH_AUTH_SOCK
# is unset after it) or push (uploaded by the deployer), $12 the repository URL, $13 the branch, $14 the deployment
# id, $15 and $16 APP_PROCESSES and APP_THREADS, $17-$24 the scripts
# git.sh, mirror.sh, unpack.sh, venv.sh, unpack_pip.py, pip.sh, shared.sh
# and hook.sh, $25 steps.sh, $26 switch.sh, $27 retention.sh, $28 the
# restart command ("": none), $29 yes|no (a health check between the
# restart and the after-switch hook), $30 how many releases to keep (0:
# all), $31 pipcopy.sh, then the shared paths.
exec 2>&1
# shellcheck disable=SC2034 # also read by steps.sh, which this script evals
root=$1 name=$2 py=$3 tools=$4 secs=$5 wait=$6 holder=$7 who=$8 reuse=$9
commit=${10} files=${11} url=${12} branch=${13} id=${14} procs=${15} threads=${16}
git_sh=${17} mirror_sh=${18} unpack_sh=${19} venv_sh=${20} unpackpip=${21} pip_sh=${22} shared_sh=${23} hook_sh=${24}
steps_sh=${25} switch_sh=${26} retention_sh=${27} restart=${28} health=${29} keep=${30} pipcopy_sh=${31}
shift 31

# shellcheck disable=SC2034 # also read by steps.sh, which this script evals
IFS= read -r nonce || exit 1
# shellcheck disable=SC2034 # also read by steps.sh, which this script evals
IFS= read -r password || exit 1
IFS= read -r nkeys || exit 1
case "$nkeys" in '' | *[!0-9]*) exit 1 ;; esac
keys=
while [ "$nkeys" -gt 0 ]; do
	IFS= read -r k || exit 1
	keys="$keys$k
"
	nkeys=$((nkeys - 1))
done

eval "$steps_sh" # mark and run

# take_lock takes the deployment lock (lock.sh's rules), its messages in
# $tmp/lock; it fails with 75 when the lock stays busy. The reader runs it,
# in the folder the script started in, where $root (as given) leads to the
# root.
take_lock() {
	# A failing exec would end the reader: the file is tried first.
	: 2>/dev/null >>"$root/.pushdeploy.lock" || return 1
	exec 9>>"$root/.pushdeploy.lock"
	if ! flock -w "$wait" 9; then
		printf 'locked by %s\n' "$(cat "$root/.pushdeploy.lock")" >"$tmp/lock"
		return 75
	fi
	printf '%s since %s%s\n' "$holder" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$who" >"$root/.pushdeploy.lock"
	if ! flock -w "$wait" "$root/.pushdeploy.active" true; then
		echo "a command an earlier deployment started is still running on this host (it ends within that deployment's DEPLOY_STEP_TIMEOUT)" >"$tmp/lock"
		return 75
	fi
}

# The deployer's lines reach the main script through a fifo, from a reader
# that notes a "stop" (and the end of the input) at once, even while a
# step runs: the build looks at it between steps. The reader takes the
# lock (on the first "lock" or "build") and holds it: the end of the input
# (the deployer is done, or its connection died) frees it at once, even
# while a step of the main script runs on (it holds the active file, for
# which the next deployment's lock waits).
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pushdeploy-phase.XXXXXXXXXX") || exit 1
mkfifo "$tmp/ctl" || exit 1
exec 4<>"$tmp/ctl" 3<&0 </dev/null
{
	locked=no
	while IFS= read -r l; do
		case "$l" in
		stop) : >"$tmp/stop" ;;
		lock | build)
			if [ "$locked" = no ]; then
				echo locking >&4
				take_lock
				rc=$?
				[ "$rc" = 0 ] && locked=yes
				echo "locked $rc" >&4
			fi
			printf '%s\n' "$l" >&4
			;;
		*) printf '%s\n' "$l" >&4 ;;
		esac
	done
	: >"$tmp/stop"
	: >"$tmp/eof"
	echo eof >&4
} <&3 >/dev/null 2>&1 &
reader=$!
exec 3<&-
trap 'rm -rf "$tmp"; kill "$reader" 2>/dev/null' EXIT
# A mark written once the deployer has gone ends the script as a PIPE
# would, but through the EXIT trap: nothing is left in /tmp.
trap 'exit 141' PIPE

# hold keeps the deployment lock (when taken) until the deployer is done:
# every way out of the script after the prepare step goes through it.
hold() {
	mark held
	until [ -e "$tmp/eof" ]; do
		IFS= read -r _ <&4
	done
	exit 0
}

# hook STEP ENV...: the release's hook .pushdeploy/STEP as step STEP
# (hook.sh, with ENV), or, when the release has none, the step with its
# message (deploy's noHook) and no process started: most releases have
# no hooks, and each would cost five (subshell, timeout, flock, env, sh).
hook() {
	h=$1
	shift
	if [ ! -e "$rel/.pushdeploy/$h" ] && [ ! -L "$rel/.pushdeploy/$h" ]; then
		mark begin "$h"
		echo "no .pushdeploy/$h in this release"
		mark end "$h" 0
		return 0
	fi
	run "$h" "$rel" yes env "$@" sh -c "$hook_sh" sh "$h"
}

# stopped STEP says whether the deployer asked to stop (or went away)
# before STEP.
stopped() {
	[ -e "$tmp/stop" ] || return 1
	mark stopped "$1"
}

# lock_step is the lock step, once the reader says it is trying: then
# what prepare did under the lock before: releases without REVISION that
# are not current are what a killed deploy left behind (nobody builds them
# while the lock is held), and are removed, with temporary links of a
# killed switch.
lock_step() {
	mark begin lock
	IFS=' ' read -r _ rc <&4
	if [ "$rc" != 0 ]; then
		cat "$tmp/lock" 2>/dev/null
		mark end lock "$rc"
		exit "$rc"
	fi
	cur=$(readlink current 2>/dev/null || true)
	# The glob matches release folder names (deploy.ReleaseName); the
	# scripts touch nothing else under releases/.
	for r in releases/[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]; do
		[ -d "$r" ] || continue
		[ "$r" = "$cur" ] && continue
		[ -e "$r/REVISION" ] && continue
		echo "removing incomplete release $r (left by an interrupted deploy)"
		rm -rf -- "$r"
	done
	rm -f .current.tmp-*
	if [ -e "releases/$name" ]; then
		echo "release $name already exists on this host; deploy again in a second"
		mark end lock 1
		hold
	fi
	mark end lock 0
}

mark begin prepare
rc=1
if mkdir -p -- "$root" && cd -- "$root" && root=$(pwd -P) && mkdir -p releases; then
	rc=0
	for tool in $tools; do
		command -v "$tool" >/dev/null 2>&1 && continue
		echo "$tool is not installed on this host"
		rc=1
		break
	done
	if [ "$rc" = 0 ] && ! command -v -- "$py" >/dev/null 2>&1; then
		echo "python interpreter $py (DEPLOY_PYTHON) not found on this host"
		rc=1
	fi
fi
# The Python's identity, part of the key of a reused venv (venv.sh), is
# asked for here, on every host at once, and not in the venv step, where
# the hosts wait for each other; while the fetch runs, which need not wait
# for it. When it does not run (or not within the step timeout), the venv
# step says so.
idpid=
if [ "$rc" = 0 ] && [ "$reuse" = yes ]; then
	{
		timeout -k 10 "$secs" sh -c "$venv_sh" sh --identity "$py" >"$tmp/pyid" 2>/dev/null </dev/null ||
			rm -f "$tmp/pyid"
	} 4>&- &
	idpid=$!
fi
[ "$rc" = 0 ] && mark root "$root"
mark end prepare "$rc"
[ "$rc" = 0 ] || exit 1
if [ "$files" = fetch ]; then
	run fetch "$root" no sh -c "$git_sh" sh sh -c "$mirror_sh" sh "$root" "$url" "$branch" "$commit" || exit 1
fi
# Nothing after the fetch needs an agent: the deployer stops lending the
# deploy key once it has seen the fetch end, and repository code (pip,
# the hooks) does not even learn where the socket is.
unset SSH_AUTH_SOCK
mark fetched
# pip-copy (pipcopy.sh): the host's compiled copy of pip, when missing, at
# once too (it runs no code of the repository and touches no release); it
# only reports what goes wrong, the venv step copes.
run pip-copy "$root" no sh -c "$pipcopy_sh" sh "$root" "$py" "$unpackpip" || exit 1

mark wait
while :; do
	IFS= read -r l <&4
	case "$l" in
	locking) lock_step ;;
	lock) mark wait ;;
	build) break ;;
	*) hold ;;
	esac
done

rel="$root/releases/$name"
stopped checkout && hold
if [ "$files" = push ]; then
	mark upload
	IFS= read -r l <&4
	[ "$l" = uploaded ] || hold
else
	run checkout "$root" yes sh -c "$unpack_sh" sh "$root" "$name" "$commit" || hold
fi
stopped venv && hold
[ -z "$idpid" ] || wait "$idpid"
run venv "$rel" yes sh -c "$venv_sh" sh "$root" "$py" "$reuse" "$unpackpip" "$tmp/venv" "$tmp/pyid" || hold
IFS=' ' read -r mode vpath <"$tmp/venv" || mode=
case "$mode" in
reuse) ;;
fresh | shared)
	stopped pip && hold
	run pip "$rel" yes sh -c "$pip_sh" sh "$vpath" "$mode" || hold
	;;
*)
	echo "unexpected answer from the venv step: $mode $vpath"
	hold
	;;
esac
if [ "$#" -gt 0 ]; then
	stopped shared && hold
	run shared "$root" yes sh -c "$shared_sh" sh "$root" "$name" "$@" || hold
fi
stopped before-switch && hold
# The environment of the hooks and of the restart command (deploy's
# restartEnv).
set -- "RELEASE_DIR=$rel" "CURRENT_DIR=$root/current" "COMMIT=$commit" "BRANCH=$branch" \
	"DEPLOYMENT_ID=$id" "APP_PROCESSES=$procs" "APP_THREADS=$threads"
hook before-switch "$@" || hold
mark built

prev=
while :; do
	IFS= read -r l <&4
	case "$l" in
	switch)
		# The lock is held: nothing else moves current meanwhile.
		prev=$(readlink current 2>/dev/null || true)
		run switch "$root" yes sh -c "$switch_sh" sh "$root" deploy "$name" "$commit" "$id" "" || hold
		mark switched "$prev"
		;;
	activate)
		if [ -n "$restart" ]; then
			run restart "$rel" yes env "$@" sh -c "$restart" || hold
		fi
		if [ "$health" = yes ]; then
			mark wait
			IFS= read -r l <&4
			[ "$l" = go ] || hold
		fi
		hook after-switch "$@" || hold
		# Activated: the deployer moves on to the next host, and follows
		# retention on the side (it waits for "retained" at the end).
		mark activated
		if [ "$keep" -gt 0 ]; then
			run retention "$root" yes sh -c "$retention_sh" sh "$root" "$keep" "$name" "${prev#releases/}"
		fi
		mark retained
		;;
	*) hold ;;
	esac
done
