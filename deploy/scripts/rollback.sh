# rollback.sh moves current to a release the host already has and
# restarts the app there, as one remote command: switch.sh, then (when
# set) the restart command in the current folder (the release's). The
# deployer starts it while the other hosts are still being checked; it
# waits for a word on its input, one a line:
#   go       switch, then restart at once (a rollback with a health check,
#            whose hosts move batch by batch; a host put back)
#   switch   switch, then wait for the word "restart" (a rollback without
#            a health check: every host switches at once, then the hosts
#            restart batch by batch)
# Anything else, or the end of the input, ends it having done nothing
# more. Everything goes to stdout, in order; between the switch's output
# and the restart's, a line "<RS>pushdeploy step restart" (RS the ASCII
# record separator) marks where the switch ended.
# $1 seconds each of the two may take, $2 the restart command ("": none),
# $3 switch.sh, $4… switch.sh's parameters.
exec 2>&1
IFS= read -r word || exit 0
case $word in
go | switch) ;;
*) exit 0 ;;
esac
secs=$1 restart=$2 switch=$3
shift 3
# Not the input: the next word is for this script.
timeout -k 10 "$secs" sh -c "$switch" sh "$@" </dev/null || exit
[ -n "$restart" ] || exit 0
printf '\036pushdeploy step restart\n'
if [ "$word" = switch ]; then
	IFS= read -r word || exit 0
	[ "$word" = restart ] || exit 0
fi
exec timeout -k 10 "$secs" sh -c "$restart"
