# rollback.sh moves current to a release the host already has and
# restarts the app there, as one remote command: switch.sh, then (when
# set) the restart command in the current folder (the release's). It
# first waits for the line "go" on its input: the deployer starts it while
# the other hosts are still being checked, and says go when this host's
# turn comes. Anything else, or the end of the input, ends it having done
# nothing. Everything goes to stdout, in order; between the switch's
# output and the restart's, a line "<RS>pushdeploy step restart" (RS the
# ASCII record separator) marks where the restart begins.
# $1 seconds each of the two may take, $2 the restart command ("": none),
# $3 switch.sh, $4… switch.sh's parameters.
exec 2>&1
IFS= read -r word || exit 0
[ "$word" = go ] || exit 0
secs=$1 restart=$2 switch=$3
shift 3
timeout -k 10 "$secs" sh -c "$switch" sh "$@" || exit
[ -n "$restart" ] || exit 0
printf '\036pushdeploy step restart\n'
exec timeout -k 10 "$secs" sh -c "$restart"
