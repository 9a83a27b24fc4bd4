# hook.sh runs the release's own hook .pushdeploy/$1, when there is one,
# with the release's venv first on PATH (so "python manage.py migrate"
# uses it). Run in the release folder. Its message when there is none is
# deploy's noHook.
hook=".pushdeploy/$1"
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
exec "./$hook"
