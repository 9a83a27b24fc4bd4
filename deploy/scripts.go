package deploy

// The shell scripts run on the hosts. Each is a constant: values reach
// them only as positional parameters ("$1", "$2"…) of
// `sh -c SCRIPT sh ARGS…`, and Command.String quotes every one of those.
// Nothing here is ever built with string formatting.

// activeFile, in the root folder, is held shared by every command a
// deployment runs on the host after its prepare step (Command.Hold).
const activeFile = ".pushdeploy.active"

// releaseGlob matches release folder names (ReleaseName) in sh: the
// scripts touch nothing else under releases/.
const releaseGlob = "[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]"

// lockScript takes the host lock and holds it until its stdin closes (the
// deployer is done, or its connection died: sshd then closes the pipe).
// Then it waits until no command of an earlier deployment still runs: a
// deployer that was killed or cut off frees its lock at once, but the
// command it was running (a hook, pip) runs on until it ends, holding
// activeFile.
// $1 root, $2 seconds to wait, $3 and $4 who holds it (written for the
// next one, with the time it got the lock between them).
const lockScript = `mkdir -p -- "$1" && cd -- "$1" || exit 1
exec 9>>.pushdeploy.lock || exit 1
if ! flock -w "$2" 9; then
	printf 'locked by %s\n' "$(cat .pushdeploy.lock)" >&2
	exit 75
fi
printf '%s since %s%s\n' "$3" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$4" >.pushdeploy.lock
if ! flock -w "$2" ` + activeFile + ` true; then
	echo "a command an earlier deployment started is still running on this host (it ends within that deployment's DEPLOY_STEP_TIMEOUT)" >&2
	exit 75
fi
echo locked
exec cat >/dev/null`

// prepareScript checks the host and makes room for the new release; it
// prints the absolute root. Releases without REVISION that are not current
// are what a killed deploy left behind: we hold the lock, so nobody is
// building them, and they are removed.
// $1 root, $2 release name, $3 python, $4 the tools needed (a list).
const prepareScript = `set -e
cd -- "$1"
root=$(pwd -P)
mkdir -p releases
for tool in $4; do
	command -v "$tool" >/dev/null 2>&1 || { echo "$tool is not installed on this host" >&2; exit 1; }
done
command -v -- "$3" >/dev/null 2>&1 || { echo "python interpreter $3 (DEPLOY_PYTHON) not found on this host" >&2; exit 1; }
cur=$(readlink current 2>/dev/null || true)
for r in releases/` + releaseGlob + `; do
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

// mirrorScript brings the host's own mirror of the release branch
// (<root>/.repo, a bare repository) up to date, and checks that it has the
// commit: fetching only what is new makes a redeploy cheap, and a commit
// the mirror has already needs no fetch at all. A mirror that
// cannot be updated (damaged by a kill, say) is made anew once. Run inside
// gitScript, which pins the git server's host key. $1 root, $2 url,
// $3 branch, $4 commit.
const mirrorScript = `set -e
root=$1 url=$2 branch=$3 commit=$4
cd -- "$root"
if [ -d .repo ] && git -C .repo cat-file -e "$commit^{commit}" 2>/dev/null; then
	# Redeploying a commit the mirror has (an older one, or the same):
	# the deployer already checked it is on the branch; no login needed.
	echo "commit $commit is in the mirror already: nothing to fetch"
	exit 0
fi
fetch() {
	[ -d .repo ] || git init --quiet --bare .repo
	git -C .repo config remote.origin.url "$url"
	git -C .repo fetch --quiet --no-tags origin "+refs/heads/$branch:refs/heads/$branch"
}
if ! fetch; then
	echo "the mirror $root/.repo could not be updated; making it anew" >&2
	rm -rf .repo
	fetch
fi
if ! git -C .repo cat-file -e "$commit^{commit}" 2>/dev/null; then
	echo "commit $commit is not on branch $branch of the repository any more (was it force-pushed away?)" >&2
	exit 1
fi`

// archiveScript writes the commit's files from the mirror into the new
// release folder, then checks them (checkTreeScript). The failure marker
// lives outside the release, where the repository's files cannot be.
// $1 root, $2 release name, $3 commit.
const archiveScript = `set -e
cd -- "$1"
mkdir -- "releases/$2"
fail=".pushdeploy-archive-failed-$2"
rm -f -- "$fail"
{ git -C .repo archive --format=tar "$3" || echo failed >"$fail"; } | tar -x -C "releases/$2"
if [ -e "$fail" ]; then
	rm -f -- "$fail"
	echo "git archive of $3 failed" >&2
	exit 1
fi
` + checkTreeScript

// untarScript unpacks the tar stream the deployer sends (push mode) into
// the new release folder, then checks it (checkTreeScript). $1 root, $2
// release name.
const untarScript = `set -e
cd -- "$1"
mkdir -- "releases/$2"
tar -x -C "releases/$2"
` + checkTreeScript

// checkTreeScript refuses a commit whose files would make the deploy write
// or read outside the release (docs/deploy.md, "What the repository may
// not contain"): a top-level venv, REVISION or REVISION.tmp, which the
// deploy itself writes (a symlink there would carry the write elsewhere; a
// committed REVISION would make a half-built release look complete), and a
// requirements.txt that is a symlink leading out of the release (pip and
// the venv key would read that file). Run in the root after unpacking;
// the caller removes the release when it fails. $2 release name.
const checkTreeScript = `cd -- "releases/$2"
rel=$(pwd -P)
for p in venv REVISION REVISION.tmp; do
	if [ -e "$p" ] || [ -L "$p" ]; then
		echo "the repository has $p at its top level, which pushdeploy writes in each release: remove it from the repository (git rm -r --cached $p) and deploy again" >&2
		exit 1
	fi
done
if [ -L requirements.txt ]; then
	real=$(readlink -f requirements.txt || true)
	case "$real" in
	"$rel"/*) ;;
	*)
		echo "requirements.txt is a symlink to $(readlink requirements.txt), outside the release: commit the file itself, or a link within the repository" >&2
		exit 1
		;;
	esac
fi`

// venvScript decides where the release's venv comes from, run in the
// release folder; its last line is "reuse|fresh|shared <path>".
//   - reuse: a venv built earlier for the same requirements.txt and Python
//     is complete (it has its marker): the release links to it.
//   - shared: such a venv is built now, at its final path (venvs are not
//     relocatable: paths are written into bin/ scripts, so it cannot be
//     built elsewhere and renamed). It is used only once complete.
//   - fresh: the release gets its own venv, as the original script did: when
//     reuse is off, or requirements.txt names local paths or other files
//     (their content would not be part of the key).
//
// $1 root, $2 python, $3 yes|no (reuse allowed).
const venvScript = `set -e
reuse=$3
if [ "$reuse" = yes ] && [ -f requirements.txt ] &&
	grep -Eq '^[[:space:]]*(-e|--editable|-r|--requirement|-c|--constraint|\.|/|file:)' requirements.txt; then
	echo "requirements.txt names local paths or other files: this release gets its own venv"
	reuse=no
fi
# mkvenv builds a venv at $1 with pip. Fast path: an empty venv (0.1 s),
# then pip (and setuptools, where ensurepip installs it) unpacked from the
# very wheels ensurepip would use, with pip's console scripts. Both are
# pure-Python wheels, so installing them is unzipping into site-packages;
# ensurepip instead runs pip to install them and byte-compiles every file,
# which is 3-6 s of the 4-7 s "python -m venv" takes. Anything unexpected
# (another wheel layout, a Python without the wheels): the plain
# "python -m venv". When that fails too, what the fast path said is shown:
# "python -m venv" keeps ensurepip's own output (e.g. "No space left on
# device") to itself.
mkvenv() {
	if fast=$({ "$py" -m venv --without-pip "$1" &&
		"$1/bin/python" -c "$unpackpip" &&
		"$1/bin/python" -c "import pip"; } 2>&1); then
		return 0
	fi
	rm -rf -- "$1"
	"$py" -m venv "$1" && return 0
	echo "python -m venv failed; the quick venv bootstrap before it said:" >&2
	printf '%s\n' "$fast" | tail -n 5 >&2
	df -Pk -- "${1%/*}" >&2 || true
	return 1
}
unpackpip='import configparser, ensurepip, glob, os, re, sys, sysconfig, zipfile
def ver(p): return [int(x) for x in re.findall(r"\d+", os.path.basename(p).split("-")[1])]
d = getattr(ensurepip, "_WHEEL_PKG_DIR", None)
if not (d and glob.glob(os.path.join(d, "pip-*.whl"))):
    d = os.path.join(os.path.dirname(ensurepip.__file__), "_bundled")
wheels = [max(glob.glob(os.path.join(d, "pip-*.whl")), key=ver)]
if sys.version_info < (3, 12):
    wheels += sorted(glob.glob(os.path.join(d, "setuptools-*.whl")), key=ver)[-1:]
site = sysconfig.get_paths()["purelib"]
bindir = os.path.dirname(sys.executable)
for w in wheels:
    with zipfile.ZipFile(w) as z:
        names = z.namelist()
        info = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
        if len(info) != 1 or any(n.startswith("/") or ".." in n.split("/") or n.split("/")[0].endswith(".data") for n in names):
            sys.exit("unexpected wheel layout: " + w)
        info = info.pop()
        if "Root-Is-Purelib: true" not in z.read(info + "/WHEEL").decode():
            sys.exit("not a pure-Python wheel: " + w)
        z.extractall(site)
    with open(os.path.join(site, info, "INSTALLER"), "w") as f:
        f.write("pushdeploy\n")
    ep = configparser.ConfigParser(delimiters=("=",))
    ep.optionxform = str
    ep.read(os.path.join(site, info, "entry_points.txt"))
    for name, target in (ep.items("console_scripts") if ep.has_section("console_scripts") else []):
        mod, _, fn = target.strip().partition(":")
        path = os.path.join(bindir, name)
        with open(path, "w") as f:
            f.write("#!%s\nimport sys\nfrom %s import %s\nif __name__ == \"__main__\":\n    sys.exit(%s())\n" % (sys.executable, mod, fn, fn))
        os.chmod(path, 0o755)'
py=$2
if [ "$reuse" != yes ]; then
	mkvenv "$PWD/venv"
	echo "fresh $PWD/venv"
	exit 0
fi
id=$("$2" -c 'import sys; print(sys.version); print(sys.executable); print(sys.platform)') || {
	echo "python interpreter $2 (DEPLOY_PYTHON) does not run" >&2
	exit 1
}
key=$({ printf '%s\n\n' "$id"; cat requirements.txt 2>/dev/null || true; } | sha256sum | cut -c1-16)
v="$1/venvs/$key"
if [ -f "$v/.pushdeploy-complete" ]; then
	ln -s "../../venvs/$key" venv
	echo "same requirements.txt and Python as an earlier release: reusing its venv $v"
	echo "reuse $v"
	exit 0
fi
rm -rf -- "$v"
mkdir -p -- "$1/venvs"
mkvenv "$v"
echo "shared $v"`

// pipScript installs requirements.txt into the venv at $1, run in the
// release folder; a shared venv ($2 = shared) is then marked complete and
// linked into the release.
const pipScript = `set -e
if [ -f requirements.txt ]; then
	"$1/bin/python" -m pip install --disable-pip-version-check --no-input -r requirements.txt
else
	echo "no requirements.txt: nothing to install"
fi
if [ "$2" = shared ]; then
	touch "$1/.pushdeploy-complete"
	ln -s "../../venvs/${1##*/}" venv
fi`

// switchScript marks the release complete (REVISION, written last so that
// its presence means "fully built"; REVISION.tmp is removed first, so the
// write cannot follow a symlink put there), then points current at it with a new
// symlink renamed over the old one (rename(2) is atomic: current is never
// missing), and appends to revisions.log. It prints the previous target.
// $1 root, $2 release name, $3 commit, $4 deployment id, $5 action.
const switchScript = `set -e
cd -- "$1"
rm -f -- "releases/$2/REVISION.tmp"
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
// uses it). Run in the release folder. Its message when there is none is
// noHook's.
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
// releases are counted and considered: a stray file with such a name
// neither stops the cleanup nor takes a kept release's place. $1 root.
// retentionVictims (the dry run's plan) must choose the same ones.
const retentionScript = `keep=$2 cur=$3 prev=$4
cd -- "$1/releases" || exit 1
n=0
for r in ` + releaseGlob + `; do
	[ -d "$r" ] && n=$((n + 1))
done
old=$((n - keep))
i=0
for r in ` + releaseGlob + `; do
	[ -d "$r" ] || continue
	i=$((i + 1))
	[ "$i" -le "$old" ] || break
	if [ "$r" = "$cur" ] || [ "$r" = "$prev" ]; then
		continue
	fi
	echo "removing old release $r"
	rm -rf -- "$r"
done
# venvs no kept release links to (and incomplete ones) go too
cd .. && [ -d venvs ] || exit 0
used=$(for l in releases/*/venv; do [ -L "$l" ] && readlink "$l"; done)
for v in venvs/*; do
	[ -d "$v" ] || continue
	if printf '%s\n' "$used" | grep -qxF "../../$v"; then
		continue
	fi
	echo "removing $v: no kept release uses it"
	rm -rf -- "$v"
done
exit 0`
