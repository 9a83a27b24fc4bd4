# releases.sh reports a host's releases without changing anything (it
# creates nothing, not even the root folder or the lock file). Output, one
# record a line, fields separated by tabs:
#
#	root	<absolute root>          (absent when the root folder does not exist)
#	current	<readlink current>      ("" when there is none)
#	release	<name>	<revision 0|1>	<venv 0|1>	<first line of REVISION>
#
# Only folders named like releases are listed. venv may be a folder or a
# symlink to one. $1 root.
[ -d "$1" ] || exit 0
cd -- "$1" || exit 1
printf 'root\t%s\n' "$(pwd -P)"
printf 'current\t%s\n' "$(readlink current 2>/dev/null || true)"
for r in releases/[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]; do
	[ -d "$r" ] || continue
	rev=0 venv=0 c=
	if [ -f "$r/REVISION" ]; then
		rev=1
		IFS= read -r c <"$r/REVISION" || true
	fi
	[ -d "$r/venv" ] && venv=1
	printf 'release\t%s\t%s\t%s\t%s\n' "${r#releases/}" "$rev" "$venv" "$c"
done
