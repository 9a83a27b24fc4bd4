# unpack_pip.py installs pip (and setuptools before Python 3.12) into the
# venv whose python runs it, by unpacking the wheels ensurepip would
# install (venv.sh's fast path): both are pure-Python wheels. It refuses
# any other wheel layout, and venv.sh then falls back to "python -m venv".
import configparser, ensurepip, glob, os, re, sys, sysconfig, zipfile
def ver(p): return [int(x) for x in re.findall(r"\d+", os.path.basename(p).split("-")[1])]
d = getattr(ensurepip, "_WHEEL_PKG_DIR", None)
if not (d and glob.glob(os.path.join(d, "pip-*.whl"))):
    d = os.path.join(os.path.dirname(ensurepip.__file__), "_bundled")
wheels = [max(glob.glob(os.path.join(d, "pip-*.whl")), key=ver)]
if sys.version_info < (3, 12):
    wheels += sorted(glob.glob(os.path.join(d, "setuptools-*.whl")), key=ver)[-1:]
site = sysconfig.get_paths()["purelib"]
bindir = os.path.dirname(sys.executable)
for w in wheels:
    with zipfile.ZipFile(w) as z:
        names = z.namelist()
        info = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
        if len(info) != 1 or any(n.startswith("/") or ".." in n.split("/") or n.split("/")[0].endswith(".data") for n in names):
            sys.exit("unexpected wheel layout: " + w)
        info = info.pop()
        if "Root-Is-Purelib: true" not in z.read(info + "/WHEEL").decode():
            sys.exit("not a pure-Python wheel: " + w)
        z.extractall(site)
    with open(os.path.join(site, info, "INSTALLER"), "w") as f:
        f.write("pushdeploy\n")
    ep = configparser.ConfigParser(delimiters=("=",))
    ep.optionxform = str
    ep.read(os.path.join(site, info, "entry_points.txt"))
    for name, target in (ep.items("console_scripts") if ep.has_section("console_scripts") else []):
        mod, _, fn = target.strip().partition(":")
        path = os.path.join(bindir, name)
        with open(path, "w") as f:
            f.write("#!%s\nimport sys\nfrom %s import %s\nif __name__ == \"__main__\":\n    sys.exit(%s())\n" % (sys.executable, mod, fn, fn))
        os.chmod(path, 0o755)
