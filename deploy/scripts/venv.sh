# venv.sh decides where the release's venv comes from, run in the release
# folder; its last line is "reuse|fresh|shared <path>".
#   - reuse: a venv built earlier for the same requirements.txt and Python
#     is complete (it has its marker): the release links to it.
#   - shared: such a venv is built now, at its final path (venvs are not
#     relocatable: paths are written into bin/ scripts, so it cannot be
#     built elsewhere and renamed). It is used only once complete.
#   - fresh: the release gets its own venv, as the original script did: when
#     reuse is off, or requirements.txt names local paths or other files
#     (their content would not be part of the key).
# $1 root, $2 python, $3 yes|no (reuse allowed), $4 the program of
# unpack_pip.py, $5 a file the last line goes to as well (phase.sh reads
# it there), $6 a file with the Python's identity (identity below), when
# phase.sh found it already (missing or empty: asked here).
# "venv.sh --identity PYTHON" only prints that identity: phase.sh asks it so,
# before the lock, and the key stays defined in one place.
set -e
# identity is the Python's part of a reused venv's key.
identity() {
	"$1" -c 'import sys; print(sys.version); print(sys.executable); print(sys.platform)'
}
if [ "$1" = --identity ]; then
	identity "$2"
	exit
fi
root=$1 reuse=$3
unpackpip=$4 answerfile=$5 idfile=${6:-}
answer() {
	printf '%s %s\n' "$1" "$2"
	printf '%s %s\n' "$1" "$2" >"$answerfile"
}
if [ "$reuse" = yes ] && [ -f requirements.txt ] &&
	grep -Eq '^[[:space:]]*(-e|--editable|-r|--requirement|-c|--constraint|\.|/|file:)' requirements.txt; then
	echo "requirements.txt names local paths or other files: this release gets its own venv"
	reuse=no
fi
# mkvenv builds a venv at $1 with pip. Fast path: an empty venv (0.1 s),
# then pip (and setuptools, where ensurepip installs it) linked in from a
# copy unpacked and byte-compiled once per host and Python in $root/pip,
# from the very wheels ensurepip would use, with pip's console scripts
# (unpack_pip.py; the pip-copy step, pipcopy.sh, has made the copy before
# the lock, unless something went wrong there: then it is made here). Both are pure-Python wheels, so installing them is
# unzipping; ensurepip instead runs pip to install them and byte-compiles
# every file in every venv, which is 3-6 s of the 4-7 s "python -m venv"
# takes. Anything unexpected (another wheel layout, a Python without the
# wheels, a pip that does not import, which unpack_pip.py checks last;
# isolated mode, so that nothing in the release folder passes for a
# module of Python's own, or for pip): the plain
# "python -m venv". When that fails too, what the fast
# path said is shown: "python -m venv" keeps
# ensurepip's own output (e.g. "No space left on device") to itself.
mkvenv() {
	if fast=$({ "$py" -m venv --without-pip "$1" &&
		"$1/bin/python" -I -c "$unpackpip" "$root/pip"; } 2>&1); then
		return 0
	fi
	# A copy of pip the venv got but that gave it no working pip (damaged
	# on the host) is set aside, to be built again by the next pip-copy
	# step (retention removes what is set aside).
	k=$(cat "$1/.pushdeploy-pip" 2>/dev/null) || k=
	case "$k" in
	'' | *[!0-9a-f]*) ;;
	*) mv -- "$root/pip/$k" "$root/pip/.tmp-unusable-$k-$$" 2>/dev/null &&
		echo "the copy of pip $root/pip/$k gave no working pip: set aside, to be built again" ;;
	esac
	rm -rf -- "$1"
	"$py" -m venv "$1" && return 0
	echo "python -m venv failed; the quick venv bootstrap before it said:" >&2
	printf '%s\n' "$fast" | tail -n 5 >&2
	df -Pk -- "${1%/*}" >&2 || true
	return 1
}
py=$2
if [ "$reuse" != yes ]; then
	mkvenv "$PWD/venv"
	answer fresh "$PWD/venv"
	exit 0
fi
id=
if [ -s "$idfile" ]; then
	id=$(cat -- "$idfile")
fi
if [ -z "$id" ]; then
	id=$(identity "$2") || {
		echo "python interpreter $2 (DEPLOY_PYTHON) does not run" >&2
		exit 1
	}
fi
key=$({ printf '%s\n\n' "$id"; cat requirements.txt 2>/dev/null || true; } | sha256sum | cut -c1-16)
v="$1/venvs/$key"
if [ -f "$v/.pushdeploy-complete" ]; then
	ln -s "../../venvs/$key" venv
	echo "same requirements.txt and Python as an earlier release: reusing its venv $v"
	answer reuse "$v"
	exit 0
fi
rm -rf -- "$v"
mkdir -p -- "$1/venvs"
mkvenv "$v"
answer shared "$v"
