package deploy

// The shell scripts of listing releases and rolling back. As in scripts.go,
// each is a constant and values reach it only as quoted positional
// parameters.

// releasesScript reports a host's releases without changing anything (it
// creates nothing, not even the root folder or the lock file). Output, one
// record a line, fields separated by tabs:
//
//	root	<absolute root>          (absent when the root folder does not exist)
//	current	<readlink current>      ("" when there is none)
//	release	<name>	<revision 0|1>	<venv 0|1>	<first line of REVISION>
//
// Only folders named like releases are listed. venv may be a folder or a
// symlink to one. $1 root.
const releasesScript = `[ -d "$1" ] || exit 0
cd -- "$1" || exit 1
printf 'root\t%s\n' "$(pwd -P)"
printf 'current\t%s\n' "$(readlink current 2>/dev/null || true)"
for r in releases/` + releaseGlob + `; do
	[ -d "$r" ] || continue
	rev=0 venv=0 c=
	if [ -f "$r/REVISION" ]; then
		rev=1
		IFS= read -r c <"$r/REVISION" || true
	fi
	[ -d "$r/venv" ] && venv=1
	printf 'release\t%s\t%s\t%s\t%s\n' "${r#releases/}" "$rev" "$venv" "$c"
done`

// rollbackSwitchScript points current at an existing, complete release with
// a new symlink renamed over the old one (atomic, as switchScript), without
// touching the release itself, and appends to revisions.log. It prints the
// previous target. $1 root, $2 release name, $3 its commit, $4 deployment
// id.
const rollbackSwitchScript = `set -e
cd -- "$1"
if [ ! -f "releases/$2/REVISION" ] || [ ! -d "releases/$2/venv" ]; then
	echo "release $2 is not complete on this host (REVISION or venv missing)" >&2
	exit 1
fi
prev=$(readlink current 2>/dev/null || true)
ln -sfn "releases/$2" ".current.tmp-$4"
mv -T ".current.tmp-$4" current
printf '%s %s %s %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" rollback "$2" "${3:-unknown}" "$4" >>revisions.log
printf '%s\n' "$prev"`
