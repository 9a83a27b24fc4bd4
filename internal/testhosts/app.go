package testhosts

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
)

// appPy is a WSGI app that answers with the version of the test dependency,
// and on /health with "ok VERSION REVISION" (REVISION is the file next to
// app.py, which the deployer writes into every release), or with 500 while
// the file "unhealthy" exists in $HOME. Run as a program it serves itself
// with the standard library's wsgiref on $APP_BIND_HOST (default
// 127.0.0.1) and the port given as its first argument, $APP_PORT or $PORT.
const appPy = `import os
import sys

import pdtestdep

HERE = os.path.dirname(os.path.abspath(__file__))


def revision():
    try:
        with open(os.path.join(HERE, "REVISION"), encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return ""


def unhealthy():
    return os.path.exists(os.path.join(os.path.expanduser("~"), "unhealthy"))


def application(environ, start_response):
    status, body = "200 OK", pdtestdep.VERSION
    if environ.get("PATH_INFO") == "/health":
        if unhealthy():
            status, body = "500 Internal Server Error", "unhealthy"
        else:
            body = " ".join(p for p in ("ok", pdtestdep.VERSION, revision()) if p)
    data = body.encode("utf-8")
    start_response(status, [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(data))),
    ])
    return [data]


def main():
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIServer, make_server

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    host = os.environ.get("APP_BIND_HOST") or "127.0.0.1"
    if len(sys.argv) > 1:
        port = sys.argv[1]
    else:
        port = os.environ.get("APP_PORT") or os.environ["PORT"]
    make_server(host, int(port), application, server_class=Server).serve_forever()


if __name__ == "__main__":
    main()
`

// AppFiles returns a small Python WSGI app, ready for Commit: app.py, whose
// "application" answers every request with pdtestdep.VERSION (and /health
// as HealthURL says), and a requirements.txt that installs
// pdtestdep==depVersion from WheelDir without any package index. Wheels of
// versions 1.0 and 2.0 exist after Start; build others with BuildWheel.
// RestartCmd serves the app on each host.
func (e *Env) AppFiles(depVersion string) map[string]string {
	req := fmt.Sprintf("--no-index\n--find-links %s\npdtestdep==%s\n", e.WheelDir, depVersion)
	return map[string]string{"app.py": appPy, "requirements.txt": req}
}

// restartScript (re)starts the app server of a host; RestartCmd puts
// "port=N" in front of it. See RestartCmd.
const restartScript = `: "${RELEASE_DIR:?RELEASE_DIR is not set}"
py="$RELEASE_DIR/venv/bin/python"
pidfile="$HOME/app.pid"
log="$HOME/app.log"
# SSH_CONNECTION is "client_addr client_port server_addr server_port".
addr=${SSH_CONNECTION:-}
addr=${addr#* * }
addr=${addr%% *}
[ -n "$addr" ] || addr=127.0.0.1
# alive PID: the process runs (a zombie, which nobody may reap, does not).
alive() {
	s=$(sed -n 's/^State:[[:space:]]*\([A-Za-z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
	[ -n "$s" ] && [ "$s" != Z ] && [ "$s" != X ]
}
old=$(cat "$pidfile" 2>/dev/null)
case $old in '' | *[!0-9]*) old= ;; esac
if [ -n "$old" ] && alive "$old"; then
	kill "$old" 2>/dev/null
	# Checked every 10 ms: the server exits within a few ms of its TERM,
	# and a coarser step would be most of a restart's time.
	i=0
	while alive "$old" && [ $i -lt 300 ]; do sleep 0.01; i=$((i + 1)); done
	if alive "$old"; then kill -9 "$old" 2>/dev/null; sleep 0.2; fi
fi
rm -f "$pidfile"
echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ) start $RELEASE_DIR/app.py on $addr:$port" >>"$log"
# Detached: own session, no terminal, and none of the SSH session's
# descriptors, which would keep the session open.
APP_BIND_HOST=$addr APP_PORT=$port setsid nohup "$py" "$RELEASE_DIR/app.py" </dev/null >>"$log" 2>&1 &
pid=$!
echo "$pid" >"$pidfile"
"$py" -c '
import socket, sys, time
addr, port, pid = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def alive():
    try:
        with open("/proc/" + pid + "/status") as f:
            for line in f:
                if line.startswith("State:"):
                    return line.split()[1] not in ("Z", "X")
    except OSError:
        return False
    return True
end = time.monotonic() + 5
while True:
    try:
        socket.create_connection((addr, port), 0.5).close()
        sys.exit(0)
    except OSError:
        pass
    if not alive():
        sys.exit("app server exited during start")
    if time.monotonic() > end:
        sys.exit("app server does not answer after 5s")
    time.sleep(0.01)
' "$addr" "$port" "$pid" </dev/null || {
	echo "app server (pid $pid) is not listening on $addr:$port; $log ends with:" >&2
	tail -n 20 "$log" >&2
	kill -9 "$pid" 2>/dev/null
	rm -f "$pidfile"
	exit 1
}
echo "app server $pid listening on $addr:$port"
`

// RestartCmd returns a shell command for DEPLOY_RESTART_CMD that serves
// app.py (AppFiles) of $RELEASE_DIR on the host's own address and port.
// It
//
//   - stops the app server this command started last on the host (pid in
//     $HOME/app.pid): SIGTERM, up to 3s of waiting, then SIGKILL;
//   - starts "$RELEASE_DIR/venv/bin/python" "$RELEASE_DIR/app.py" in the
//     background with setsid and nohup, stdin from /dev/null and output
//     appended to $HOME/app.log, so that it outlives the SSH session
//     without holding it open; it binds the server address of
//     $SSH_CONNECTION (the host's Addr), or 127.0.0.1 without SSH, and port;
//   - writes the new pid to $HOME/app.pid;
//   - waits up to 5s until the port accepts connections and exits 0, or
//     kills the server and exits 1 with the tail of app.log on stderr when
//     it exits or does not answer in time.
//
// Close kills the servers with every other process of the host users.
func (e *Env) RestartCmd(port int) string {
	return "port=" + strconv.Itoa(port) + "\n" + restartScript
}

// HealthURL returns the URL of the health check of the app server that
// RestartCmd(port) starts on h: http://ADDR:PORT/health. It answers 200
// "ok VERSION REVISION" (REVISION only when the release has one), or 500
// "unhealthy" after SetUnhealthy(true).
func (h *Host) HealthURL(port int) string {
	return "http://" + net.JoinHostPort(h.Addr, strconv.Itoa(port)) + "/health"
}

// SetUnhealthy makes the health check of h's app server fail (true) or
// pass again (false), by creating or removing the file "unhealthy" in the
// user's home. It takes effect at the next request, without a restart.
func (h *Host) SetUnhealthy(unhealthy bool) error {
	p := h.Path("unhealthy")
	if !unhealthy {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("testhosts: host %s: set healthy: %w", h.User, err)
		}
		return nil
	}
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		return fmt.Errorf("testhosts: host %s: set unhealthy: %w", h.User, err)
	}
	if err := os.Chown(p, h.uid, h.gid); err != nil {
		return fmt.Errorf("testhosts: host %s: set unhealthy: %w", h.User, err)
	}
	return nil
}
