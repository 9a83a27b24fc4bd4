# unpack_pip.py installs pip (and setuptools before Python 3.12) into the
# venv whose python runs it (venv.sh's fast path), from the wheels
# ensurepip would install: both are pure-Python wheels. It refuses any other
# wheel layout, and venv.sh then falls back to "python -m venv".
# The wheels are unpacked, and pip byte-compiled, once per host, Python and
# wheel set, into $1/<key> (argv[1] is the folder of these copies, <root>/pip):
# built in a temporary folder and renamed into place, so a copy is either
# complete or absent, and when two deployments build it at once the first
# rename wins and the other uses it. Each venv then gets hard links to the
# copy's files (copies where links fail): its own pip, like ensurepip's, but
# already compiled, which saves pip's first run 2 s of compiling itself.
# Where the Python has a pip of its own with the very same sources (make
# install and pyenv install it from the same wheel, and compile it), the
# copy takes its compiled files rather than compiling again
# (reuse_compiled): 1-2 CPU-seconds less per host and Python.
# Python replaces a .pyc by renaming a new file over it, never by writing
# into it, so venvs never change each other's (or the copy's) files. The
# venv's .pushdeploy-pip names the copy it came from (retention.sh keeps
# the copies some venv came from).
# With argv[2] and argv[3] (pipcopy.sh, the pip-copy step, run by the
# Python itself, on every host at once before the lock) it only makes the
# copy, when missing, and writes argv[3], the stamp: the key, then a line
# "INODE SIZE MTIME PATH" (as stat -L -c '%i %s %Y %n' prints it) for each
# file the key is made of: argv[2] (the python, as the shell found it),
# the wheels' folder and the wheels. While those are unchanged, pipcopy.sh
# knows the copy is the one this code would choose without starting Python.
import compileall, configparser, ensurepip, glob, hashlib, importlib, importlib.machinery, importlib.util, os, re, shutil, sys, sysconfig, tempfile, time, warnings, zipfile
def ver(p): return [int(x) for x in re.findall(r"\d+", os.path.basename(p).split("-")[1])]
d = getattr(ensurepip, "_WHEEL_PKG_DIR", None)
if not (d and glob.glob(os.path.join(d, "pip-*.whl"))):
    d = os.path.join(os.path.dirname(ensurepip.__file__), "_bundled")
wheels = [max(glob.glob(os.path.join(d, "pip-*.whl")), key=ver)]
if sys.version_info < (3, 12):
    wheels += sorted(glob.glob(os.path.join(d, "setuptools-*.whl")), key=ver)[-1:]
h = hashlib.sha256(repr((sys.version, sys.platform, sys.base_prefix, sys.implementation.cache_tag)).encode())
for w in wheels:
    st = os.stat(w)
    h.update(repr((w, st.st_size, st.st_mtime_ns)).encode())
key = h.hexdigest()[:16]
copies = sys.argv[1]
copy = os.path.join(copies, key)
prepare = len(sys.argv) > 3

def build():
    os.makedirs(copies, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=copies)
    try:
        for w in wheels:
            with zipfile.ZipFile(w) as z:
                names = z.namelist()
                info = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
                if len(info) != 1 or any(n.startswith("/") or ".." in n.split("/") or n.split("/")[0].endswith(".data") for n in names):
                    sys.exit("unexpected wheel layout: " + w)
                info = info.pop()
                if "Root-Is-Purelib: true" not in z.read(info + "/WHEEL").decode():
                    sys.exit("not a pure-Python wheel: " + w)
                z.extractall(tmp)
            with open(os.path.join(tmp, info, "INSTALLER"), "w") as f:
                f.write("pushdeploy\n")
        reused = reuse_compiled(os.path.join(tmp, "pip"))
        # pip only: setuptools is imported only to build from source, and
        # compiles as it is imported then. What reuse_compiled took is not
        # compiled again (compileall leaves an up-to-date .pyc alone).
        # Files that do not compile are left to Python, as ensurepip
        # leaves them; their warnings are
        # noise here. In this one process, on one core: worker processes
        # would finish sooner on an idle host with many cores, but cost
        # half as much CPU again (1.7 CPU-s instead of 1.1 here), taken
        # from the app the host serves, and from the other hosts of a pool
        # that share their machine's cores.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compileall.compile_dir(os.path.join(tmp, "pip"), quiet=2)
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, copy)
        except OSError:
            if not os.path.isdir(copy):
                raise
            shutil.rmtree(tmp)  # another deployment's rename came first
        return reused
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

def source_stamp(st):
    """The source's mtime and size as a timestamp .pyc's header has them."""
    return (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little") + (st.st_size & 0xFFFFFFFF).to_bytes(4, "little")

def reuse_compiled(ours):
    """The Python's own pip, where it has one (make install and pyenv
    install it from the same wheel, compiled), saves compiling: for each
    module whose source is byte for byte the wheel's, and whose .pyc there
    is valid for that source (its magic number is this Python's, and its
    source mtime and size, or source hash, match), the copy gets that
    .pyc's code with a header for its own file; Python sets the code's file
    name to the module's path on import. Any other module is compiled
    here. Returns how many were taken."""
    spec = importlib.machinery.PathFinder.find_spec("pip")
    if not (spec and spec.origin and spec.submodule_search_locations):
        return 0
    theirs_root = os.path.dirname(spec.origin)
    n = 0
    for dirpath, _, files in os.walk(ours):
        rel = os.path.relpath(dirpath, ours)
        for f in files:
            if not f.endswith(".py"):
                continue
            mine = os.path.join(dirpath, f)
            theirs = os.path.normpath(os.path.join(theirs_root, rel, f))
            try:
                before = os.stat(theirs)
                with open(theirs, "rb") as fh:
                    src = fh.read()
                with open(importlib.util.cache_from_source(theirs), "rb") as fh:
                    pyc = fh.read()
                after = os.stat(theirs)
            except OSError:
                continue
            with open(mine, "rb") as fh:
                if fh.read() != src:
                    continue
            if (before.st_mtime_ns, before.st_size, before.st_ino) != (after.st_mtime_ns, after.st_size, after.st_ino):
                continue  # changed while read
            if len(pyc) < 16 or pyc[:4] != importlib.util.MAGIC_NUMBER:
                continue
            flags = int.from_bytes(pyc[4:8], "little")
            if flags == 0:
                valid = pyc[8:16] == source_stamp(after)
            elif flags & 1:
                valid = pyc[8:16] == importlib.util.source_hash(src)
            else:
                valid = False
            if not valid:
                continue
            cache = importlib.util.cache_from_source(mine)
            os.makedirs(os.path.dirname(cache), exist_ok=True)
            with open(cache, "wb") as fh:
                fh.write(importlib.util.MAGIC_NUMBER + bytes(4) + source_stamp(os.stat(mine)) + pyc[16:])
            n += 1
    return n

def link(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)

def stamp(python, path):
    files = [python, d] + wheels
    if any("\n" in f for f in files):
        return  # not a line each: pipcopy.sh starts Python every time
    lines = [key]
    for f in files:
        st = os.stat(f)
        lines.append("%d %d %d %s" % (st.st_ino, st.st_size, st.st_mtime_ns // 10**9, f))
    tmp = path + ".tmp-%d" % os.getpid()
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)

if os.path.isdir(copy):
    if prepare:
        print("found the copy of pip for this Python: " + copy)
else:
    start = time.monotonic()
    reused = build()
    if prepare:
        print("built the copy of pip for this Python in %.1f s: %s (from %s)" % (
            time.monotonic() - start, copy, ", ".join(os.path.basename(w) for w in wheels)))
        if reused:
            print("%d of its modules came compiled from this Python's own pip, the same source" % reused)
if prepare:
    stamp(sys.argv[2], sys.argv[3])
    sys.exit(0)
site = sysconfig.get_paths()["purelib"]
shutil.copytree(copy, site, copy_function=link, dirs_exist_ok=True)
with open(os.path.join(sys.prefix, ".pushdeploy-pip"), "w") as f:
    f.write(key + "\n")
bindir = os.path.dirname(sys.executable)
for info in glob.glob(os.path.join(copy, "*.dist-info")):
    ep = configparser.ConfigParser(delimiters=("=",))
    ep.optionxform = str
    ep.read(os.path.join(info, "entry_points.txt"))
    for name, target in (ep.items("console_scripts") if ep.has_section("console_scripts") else []):
        mod, _, fn = target.strip().partition(":")
        path = os.path.join(bindir, name)
        with open(path, "w") as f:
            f.write("#!%s\nimport sys\nfrom %s import %s\nif __name__ == \"__main__\":\n    sys.exit(%s())\n" % (sys.executable, mod, fn, fn))
        os.chmod(path, 0o755)
# The venv's pip must import as the package it is (without its
# __init__.py it would import as a namespace package, without
# __version__); checked here rather than by another start of Python.
importlib.invalidate_caches()
import pip
pip.__version__
