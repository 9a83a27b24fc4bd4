# check.sh reports what a deploy needs on a host (pushdeploy check),
# without changing anything but creating the root folder; it prints the
# absolute root. $1 root, $2 the tools needed (a list).
if ! { mkdir -p -- "$1" && cd -- "$1" && test -w .; }; then
	echo "root folder $1 is not writable" >&2
	exit 1
fi
for tool in $2; do
	command -v "$tool" >/dev/null 2>&1 || { echo "$tool is not installed" >&2; exit 1; }
done
pwd -P
