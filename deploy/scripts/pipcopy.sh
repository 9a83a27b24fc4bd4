# pipcopy.sh is the pip-copy step: it makes the host's compiled copy of pip
# for this Python (<root>/pip/<key>, unpack_pip.py), when missing, so that
# the venv step only links it. phase.sh runs it on every host at once,
# before the lock: it runs no code of the repository (the Python in
# isolated mode, from the root folder), and it touches no release folder.
# What it makes is built in a temporary folder and renamed into place.
# When the stamp (<root>/pip/.pushdeploy-ready, unpack_pip.py writes it)
# says which copy this Python gets, and the python, the wheels' folder and
# the wheels are the files it names, unchanged, and that copy is there,
# it is done without starting Python: a redeploy pays a stat for it.
# Whatever goes wrong here is only reported: the venv step makes the copy
# itself when it finds none, or falls back to "python -m venv".
# $1 root, $2 python, $3 the program of unpack_pip.py.
root=$1 py=$2 unpackpip=$3
copies=$root/pip stamp=$root/pip/.pushdeploy-ready
python=$(command -v -- "$py") || {
	echo "python interpreter $py (DEPLOY_PYTHON) not found on this host"
	exit 0
}

# ready says whether the stamp names this python and a copy that is there,
# and every file it names is as it was when it was written.
ready() {
	[ -f "$stamp" ] || return 1
	key='' want=''
	set --
	while IFS= read -r l; do
		if [ -z "$key" ]; then
			key=$l
			continue
		fi
		want="$want$l
"
		set -- "$@" "${l#* * * }"
	done <"$stamp"
	case "$key" in '' | *[!0-9a-f]*) return 1 ;; esac
	[ "$#" -ge 2 ] && [ "$1" = "$python" ] && [ -d "$copies/$key" ] || return 1
	[ "$(stat -L -c '%i %s %Y %n' -- "$@" 2>/dev/null)" = "${want%?}" ]
}

if ready; then
	echo "the copy of pip for this Python is ready: $copies/$key"
	exit 0
fi
# The build holds pip/.lock shared: retention.sh (another deployment's,
# under the host lock this step does not take) leaves pip/ alone while it
# is held.
if mkdir -p -- "$copies" && out=$(flock -s "$copies/.lock" "$python" -I -c "$unpackpip" "$copies" "$python" "$stamp" 2>&1); then
	printf '%s\n' "$out"
	exit 0
fi
printf '%s\n' "$out" | tail -n 5
echo "no copy of pip was made here: the venv step tries again, and falls back to python -m venv"
exit 0
