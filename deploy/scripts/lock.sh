# lock.sh takes the host lock and holds it until its stdin closes (the
# deployer is done, or its connection died: sshd then closes the pipe).
# Then it waits until no command of an earlier deployment still runs: a
# deployer that was killed or cut off frees its lock at once, but the
# command it was running (a hook, pip) runs on until it ends, holding
# .pushdeploy.active (activeFile in deploy, which every later command of a
# deployment holds shared).
# $1 root, $2 seconds to wait, $3 and $4 who holds it (written for the
# next one, with the time it got the lock between them); $5, when set, a
# script run in the root once the lock is held, with "." as its $1, its
# output printed before "locked" (a rollback reads the host's releases with
# releases.sh so, under the lock and in the same command).
mkdir -p -- "$1" && cd -- "$1" || exit 1
exec 9>>.pushdeploy.lock || exit 1
if ! flock -w "$2" 9; then
	printf 'locked by %s\n' "$(cat .pushdeploy.lock)" >&2
	exit 75
fi
printf '%s since %s%s\n' "$3" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$4" >.pushdeploy.lock
if ! flock -w "$2" .pushdeploy.active true; then
	echo "a command an earlier deployment started is still running on this host (it ends within that deployment's DEPLOY_STEP_TIMEOUT)" >&2
	exit 75
fi
if [ -n "${5-}" ]; then
	sh -c "$5" sh . || exit 1
fi
echo locked
exec cat >/dev/null
