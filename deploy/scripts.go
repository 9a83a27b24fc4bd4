package deploy

// The shell scripts run on the hosts. Each is a constant: values reach
// them only as positional parameters ("$1", "$2"…) of
// `sh -c SCRIPT sh ARGS…`, and Command.String quotes every one of those.
// Nothing here is ever built with string formatting.

// lockScript takes the host lock and holds it until its stdin closes (the
// deployer is done, or its connection died: sshd then closes the pipe).
// $1 root, $2 seconds to wait, $3 who holds it (written for the next one).
const lockScript = `mkdir -p -- "$1" && cd -- "$1" || exit 1
exec 9>>.pushdeploy.lock || exit 1
if ! flock -w "$2" 9; then
	printf 'locked by %s\n' "$(cat .pushdeploy.lock)" >&2
	exit 75
fi
printf '%s\n' "$3" >.pushdeploy.lock
echo locked
exec cat >/dev/null`

// prepareScript checks the host and makes room for the new release; it
// prints the absolute root. Releases without REVISION that are not current
// are what a killed deploy left behind: we hold the lock, so nobody is
// building them, and they are removed.
// $1 root, $2 release name, $3 python.
const prepareScript = `set -e
cd -- "$1"
root=$(pwd -P)
mkdir -p releases
for tool in git flock timeout; do
	command -v "$tool" >/dev/null 2>&1 || { echo "$tool is not installed on this host" >&2; exit 1; }
done
command -v -- "$3" >/dev/null 2>&1 || { echo "python interpreter $3 (DEPLOY_PYTHON) not found on this host" >&2; exit 1; }
cur=$(readlink current 2>/dev/null || true)
for r in releases/[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]; do
	[ -d "$r" ] || continue
	[ "$r" = "$cur" ] && continue
	[ -e "$r/REVISION" ] && continue
	echo "removing incomplete release $r (left by an interrupted deploy)" >&2
	rm -rf -- "$r"
done
rm -f .current.tmp-*
if [ -e "releases/$2" ]; then
	echo "release $2 already exists on this host; deploy again in a second" >&2
	exit 1
fi
printf '%s\n' "$root"`

// gitScript runs a git command ("$@") that reaches the git server, with
// the server's host keys (as verified by the deployer, on stdin) as the only
// ones ssh accepts. The keys go to a private temporary file with a plain
// name: ssh splits UserKnownHostsFile at spaces and expands % in it, so a
// path under an arbitrary root folder could not be passed safely.
const gitScript = `kh=$(mktemp /tmp/pushdeploy-known_hosts.XXXXXXXXXX) || exit 1
trap 'rm -f "$kh"' EXIT
trap 'rm -f "$kh"; exit 143' HUP INT TERM
cat >"$kh"
if [ -s "$kh" ]; then
	GIT_SSH_COMMAND="ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$kh"
	export GIT_SSH_COMMAND
fi
GIT_TERMINAL_PROMPT=0 "$@"`

// pipScript installs requirements.txt into the release's venv, when there
// is one. Run in the release folder.
const pipScript = `if [ -f requirements.txt ]; then
	exec venv/bin/python -m pip install --disable-pip-version-check --no-input -r requirements.txt
fi
echo "no requirements.txt: nothing to install"`

// switchScript marks the release complete (REVISION, written last so that
// its presence means "fully built"), then points current at it with a new
// symlink renamed over the old one (rename(2) is atomic: current is never
// missing), and appends to revisions.log. It prints the previous target.
// $1 root, $2 release name, $3 commit, $4 deployment id, $5 action.
const switchScript = `set -e
cd -- "$1"
printf '%s\n' "$3" >"releases/$2/REVISION.tmp"
mv -f "releases/$2/REVISION.tmp" "releases/$2/REVISION"
prev=$(readlink current 2>/dev/null || true)
ln -sfn "releases/$2" ".current.tmp-$4"
mv -T ".current.tmp-$4" current
printf '%s %s %s %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$5" "$2" "$3" "$4" >>revisions.log
printf '%s\n' "$prev"`

// revertScript undoes a switch whose restart failed: current goes back to
// $2 (or is removed when there was none before), and the new release $3 is
// deleted. $1 root, $2 previous target or "", $3 release name, $4
// deployment id. It prints the previous release's commit.
const revertScript = `set -e
cd -- "$1"
if [ -n "$2" ]; then
	ln -sfn "$2" ".current.tmp-$4"
	mv -T ".current.tmp-$4" current
	prevc=$(cat "$2/REVISION" 2>/dev/null || echo unknown)
	printf '%s %s %s %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" rollback "${2#releases/}" "$prevc" "$4" >>revisions.log
	printf '%s\n' "$prevc"
else
	rm -f current
fi
rm -rf -- "releases/$3"`

// removeScript deletes a release that failed to build. $1 root, $2 name.
const removeScript = `cd -- "$1" && rm -rf -- "releases/$2"`

// sharedScript links <root>/shared/<path> into the release for each path.
// A missing shared folder is created; a missing shared file (a last part
// with a dot, like .env or settings.py) fails the host before its switch,
// naming the file. A path ending in "/" is always a folder. Nothing is
// linked through a symlink that the repository put in the release, which
// could point anywhere. $1 root, $2 release name, then the paths.
const sharedScript = `set -e
root=$1
rel="$1/releases/$2"
shift 2
for p in "$@"; do
	dir=no
	case "$p" in */) dir=yes; p=${p%/} ;; esac
	src="$root/shared/$p"
	if [ ! -e "$src" ] && [ ! -L "$src" ]; then
		case "${p##*/}" in
		*.*) [ "$dir" = yes ] || { echo "shared file $src is missing: create it on this host (DEPLOY_SHARED_PATHS lists $p)" >&2; exit 1; } ;;
		esac
		mkdir -p -- "$src"
		echo "created shared folder $src"
	fi
	d=$rel
	rest=$p
	while :; do
		case "$rest" in */*) ;; *) break ;; esac
		d="$d/${rest%%/*}"
		rest=${rest#*/}
		if [ -L "$d" ]; then
			echo "refusing to link $p: $d is a symlink in the release" >&2
			exit 1
		fi
		mkdir -p -- "$d"
	done
	rm -rf -- "$rel/$p"
	ln -s -- "$src" "$rel/$p"
	echo "linked $p -> $src"
done`

// hookScript runs the release's own hook .pushdeploy/$1, when there is
// one, with the release's venv first on PATH (so "python manage.py migrate"
// uses it). Run in the release folder.
const hookScript = `hook=".pushdeploy/$1"
if [ ! -e "$hook" ] && [ ! -L "$hook" ]; then
	echo "no $hook in this release"
	exit 0
fi
if [ ! -f "$hook" ] || [ ! -x "$hook" ]; then
	echo "$hook exists but is not an executable file: make it executable (git update-index --chmod=+x $hook) and commit" >&2
	exit 1
fi
PATH="$PWD/venv/bin:$PATH"
VIRTUAL_ENV="$PWD/venv"
export PATH VIRTUAL_ENV
exec "./$hook"`

// retentionScript removes old releases: it keeps the newest $2, and never
// removes $3 (current) or $4 (the one before it). Only folders named like
// releases are considered. $1 root.
const retentionScript = `keep=$2 cur=$3 prev=$4
cd -- "$1/releases" || exit 1
set -- [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]
[ -d "$1" ] || exit 0
old=$(($# - keep))
i=0
for r in "$@"; do
	i=$((i + 1))
	[ "$i" -le "$old" ] || break
	if [ "$r" = "$cur" ] || [ "$r" = "$prev" ] || [ ! -d "$r" ]; then
		continue
	fi
	echo "removing old release $r"
	rm -rf -- "$r"
done`
