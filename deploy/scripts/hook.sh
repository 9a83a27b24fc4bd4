# hook.sh runs the release's own hook .pushdeploy/$1 with the release's
# venv first on PATH (so "python manage.py migrate" uses it). Run in the
# release folder, when the hook is there (phase.sh's hook looks first).
hook=".pushdeploy/$1"
if [ ! -f "$hook" ] || [ ! -x "$hook" ]; then
	echo "$hook exists but is not an executable file: make it executable (git update-index --chmod=+x $hook) and commit" >&2
	exit 1
fi
PATH="$PWD/venv/bin:$PATH"
VIRTUAL_ENV="$PWD/venv"
export PATH VIRTUAL_ENV
exec "./$hook"
