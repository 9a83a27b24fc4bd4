# retention.sh removes old releases: it keeps the newest $2, and never
# removes $3 (current) or $4 (the one before it). Only folders named like
# releases are counted and considered: a stray file with such a name
# neither stops the cleanup nor takes a kept release's place. deploy's
# retentionVictims (the dry run's plan) must choose the same ones.
# $1 root.
keep=$2 cur=$3 prev=$4
cd -- "$1/releases" || exit 1
n=0
for r in [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]; do
	[ -d "$r" ] && n=$((n + 1))
done
old=$((n - keep))
i=0
for r in [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]; do
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
# the copies of pip in pip/ (unpack_pip.py) that no kept venv was made
# from go too (after a Python upgrade, once its last venv has gone), but
# not the one the stamp names (the copy for the Python the last pip-copy
# step found: the next venv's), and the temporary folders of builds that
# never finished. The venv step builds only under the host lock, which
# this runs under; the pip-copy step of another deployment builds without
# it, holding pip/.lock shared: while it does, pip/ is left as it is.
[ -d pip ] || exit 0
exec 8>>pip/.lock || exit 0
if ! flock -n -x 8; then
	echo "not cleaning pip/: another deployment is building a copy of pip there"
	exit 0
fi
from=$(cat venvs/*/.pushdeploy-pip releases/*/venv/.pushdeploy-pip 2>/dev/null || true)
stamp=$(head -n 1 pip/.pushdeploy-ready 2>/dev/null || true)
for c in pip/* pip/.tmp-*; do
	[ -d "$c" ] || continue
	if [ -n "$stamp" ] && [ "${c#pip/}" = "$stamp" ]; then
		continue
	fi
	if printf '%s\n' "$from" | grep -qxF "${c#pip/}"; then
		continue
	fi
	echo "removing $c: no kept venv was made from it"
	rm -rf -- "$c"
done
exit 0
