# plan.sh reports what a deploy would find and do on a host (the dry run),
# changing nothing at all: it creates no folder (not even the root), no
# lock file, and writes nowhere; Python runs with -B so it writes no
# bytecode either. It always exits 0 once it has run; everything it finds
# is in its output, one record a line, fields separated by tabs:
#
#	tool	<name>                   a tool the deploy needs is missing
#	python	ok	<executable version>  DEPLOY_PYTHON runs and has venv
#	python	missing | error	<last line of its error>
#	noroot	<absolute path>          the root does not exist yet
#	root	<absolute root>
#	unwritable	<folder>            the root (or the folder it would be made in) is not writable
#	current	<readlink current>      ("" when there is none)
#	release	<name>	<d|f>	<REVISION 0|1>	<venv 0|1>
#	stale	<.current.tmp-* link>
#	lock	free | unreadable
#	lock	held	<first line of the lock file: who holds it>
#	shared	missing | create	<path>
#
# release lists every entry named like a release (a folder or not), in the
# shell's glob order, as prepare.sh and retention.sh see them.
# $1 root, $2 python, $3 the tools needed (a list), then the shared paths.
root=$1 py=$2 tools=$3 have=no
shift 3
for tool in $tools; do
	command -v "$tool" >/dev/null 2>&1 || printf 'tool\t%s\n' "$tool"
done
if ! command -v -- "$py" >/dev/null 2>&1; then
	printf 'python\tmissing\t%s\n' "$py"
elif out=$("$py" -B -c 'import sys, venv, ensurepip; print(sys.executable, sys.version.split()[0])' 2>&1); then
	printf 'python\tok\t%s\n' "$out"
else
	printf 'python\terror\t%s\n' "$(printf '%s\n' "$out" | tail -n 1)"
fi
if [ ! -e "$root" ]; then
	case "$root" in /*) p=$root ;; *) p=$PWD/$root ;; esac
	printf 'noroot\t%s\n' "$p"
	while [ ! -e "$p" ]; do p=$(dirname -- "$p"); done
	{ [ -d "$p" ] && [ -w "$p" ]; } || printf 'unwritable\t%s\n' "$p"
	have=no
elif cd -- "$root"; then
	printf 'root\t%s\n' "$(pwd -P)"
	[ -w . ] || printf 'unwritable\t%s\n' "$(pwd -P)"
	printf 'current\t%s\n' "$(readlink current 2>/dev/null || true)"
	for r in releases/[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]; do
		[ -e "$r" ] || [ -L "$r" ] || continue
		t=f rev=0 venv=0
		[ -d "$r" ] && t=d
		[ -e "$r/REVISION" ] && rev=1
		[ -d "$r/venv" ] && venv=1
		printf 'release\t%s\t%s\t%s\t%s\n' "${r#releases/}" "$t" "$rev" "$venv"
	done
	for s in .current.tmp-*; do
		if [ -e "$s" ] || [ -L "$s" ]; then printf 'stale\t%s\n' "$s"; fi
	done
	if [ ! -e .pushdeploy.lock ] || ! command -v flock >/dev/null 2>&1; then
		:
	elif [ ! -r .pushdeploy.lock ]; then
		printf 'lock\tunreadable\n'
	elif flock -n -s 9 9<.pushdeploy.lock; then
		printf 'lock\tfree\n'
	else
		printf 'lock\theld\t%s\n' "$(head -n 1 .pushdeploy.lock)"
	fi
	have=yes
else
	exit 1
fi
for p in "$@"; do
	dir=no
	case "$p" in */) dir=yes; p=${p%/} ;; esac
	if [ "$have" = yes ] && { [ -e "shared/$p" ] || [ -L "shared/$p" ]; }; then
		continue
	fi
	what=create
	case "${p##*/}" in *.*) [ "$dir" = yes ] || what=missing ;; esac
	printf 'shared\t%s\t%s\n' "$what" "$p"
done
exit 0
