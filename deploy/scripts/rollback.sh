# rollback.sh moves current to a release the host already has and
# restarts the app there, as one remote command: switch.sh, then (when
# set) the restart command in the release's folder. The deployer starts it
# as soon as it has logged in, beside the lock command, so that it is
# ready when the host's target is known; until a word on its input it
# does nothing at all (not even enter the root). The words, one a line:
#   go NAME [COMMIT]      switch to releases/NAME, then restart at once (a
#                         rollback with a health check, whose hosts move
#                         batch by batch; a host put back)
#   switch NAME [COMMIT]  switch, then wait for the word "restart" (a
#                         rollback without a health check: every host
#                         switches at once, then the hosts restart batch
#                         by batch)
# NAME is a release folder name, COMMIT its commit (absent: read from its
# REVISION). A word that is not one of these is refused (status 2); the
# end of the input ends it having done nothing more. Everything goes to
# stdout, in order; between the switch's output and the restart's, a line
# "<RS>pushdeploy step restart" (RS the ASCII record separator) marks where
# the switch ended. The switch and the restart each hold the lock file $7
# shared while they run (see lock.sh); the wait for a word holds nothing.
# The restart runs with RELEASE_DIR, CURRENT_DIR and COMMIT set here (the
# deployer's environment has the rest).
# $1 seconds each of the two may take, $2 the restart command ("": none),
# $3 switch.sh, $4 root, $5 switch.sh's action (rollback), $6 deployment
# id, $7 the lock file, under the root.
exec 2>&1
IFS=' ' read -r word name commit extra || exit 0
case $word in
go | switch) ;;
*) exit 0 ;;
esac
case $name in
[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]) ;;
*)
	echo "rollback.sh: bad release name in the word $word" >&2
	exit 2
	;;
esac
case $commit in
*[!0-9a-f]*)
	echo "rollback.sh: bad commit in the word $word" >&2
	exit 2
	;;
esac
if [ -n "$extra" ]; then
	echo "rollback.sh: too many fields in the word $word" >&2
	exit 2
fi
secs=$1 restart=$2 switch=$3 action=$5 id=$6
cd -- "$4" || exit 1
root=$(pwd -P) || exit 1
active=$root/$7
# Not the input: the next word is for this script.
timeout -k 10 "$secs" flock -s -o "$active" sh -c "$switch" sh "$root" "$action" "$name" "$commit" "$id" "" </dev/null || exit
[ -n "$restart" ] || exit 0
printf '\036pushdeploy step restart\n'
if [ "$word" = switch ]; then
	IFS= read -r word || exit 0
	[ "$word" = restart ] || exit 0
fi
[ -n "$commit" ] || IFS= read -r commit <"releases/$name/REVISION" || true
cd -- "releases/$name" || exit 1
RELEASE_DIR=$root/releases/$name CURRENT_DIR=$root/current COMMIT=$commit
export RELEASE_DIR CURRENT_DIR COMMIT
exec timeout -k 10 "$secs" flock -s -o "$active" sh -c "$restart"
