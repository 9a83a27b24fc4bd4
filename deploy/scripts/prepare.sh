# prepare.sh checks the host and makes room for the new release; it prints
# the absolute root. Releases without REVISION that are not current are
# what a killed deploy left behind: we hold the lock, so nobody is building
# them, and they are removed.
# $1 root, $2 release name, $3 python, $4 the tools needed (a list).
set -e
cd -- "$1"
root=$(pwd -P)
mkdir -p releases
for tool in $4; do
	command -v "$tool" >/dev/null 2>&1 || { echo "$tool is not installed on this host" >&2; exit 1; }
done
command -v -- "$3" >/dev/null 2>&1 || { echo "python interpreter $3 (DEPLOY_PYTHON) not found on this host" >&2; exit 1; }
cur=$(readlink current 2>/dev/null || true)
# The glob matches release folder names (deploy.ReleaseName); the scripts
# touch nothing else under releases/.
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
printf '%s\n' "$root"
