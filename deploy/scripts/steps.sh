# shellcheck disable=SC2154 # nonce, secs, root, password and keys are set by the script that evals this one
# steps.sh is phase.sh's marking and running of steps; phase.sh evals it
# (it comes as one of its parameters, a constant like every script): mark, which
# writes a mark with the run's nonce (deploy's markedRun), and run, which
# runs a step. Set before: nonce, secs (the step timeout), root, and for a
# fetch step git.sh's input in password and keys.

mark() {
	printf '\036pushdeploy %s %s\n' "$nonce" "$*"
}

# run STEP DIR HOLD COMMAND...: COMMAND as the step, marked, in DIR, under
# the step timeout, holding the active file shared when HOLD is yes; the
# fetch gets git.sh's input, any other step none. A TERM (the deployer
# stops the command) ends the step too.
pid=
trap '[ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null; exit 143' HUP INT TERM
run() {
	s=$1 dir=$2 hold=$3
	shift 3
	if [ "$hold" = yes ]; then
		set -- flock -s -o "$root/.pushdeploy.active" "$@"
	fi
	mark begin "$s"
	# The subshell goes to DIR and becomes timeout: a shell less to start
	# for every step than timeout running "sh -c 'cd DIR && exec ...'".
	if [ "$s" = fetch ]; then
		printf '%s\n%s' "$password" "$keys" |
			(cd -- "$dir" && exec timeout -k 10 "$secs" "$@") 4>&- &
	else
		(cd -- "$dir" && exec timeout -k 10 "$secs" "$@") 4>&- </dev/null &
	fi
	pid=$!
	wait "$pid"
	rc=$?
	pid=
	mark end "$s" "$rc"
	return "$rc"
}
