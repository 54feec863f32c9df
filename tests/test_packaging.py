"""The wheel carries the Lua scripts and works from a fresh virtualenv."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.servers import RedisServer

ROOT = Path(__file__).resolve().parent.parent

SMOKE = """
import importlib, pkgutil, sys, redismem
from redismem.connection import connect
assert "site-packages" in redismem.__file__, redismem.__file__
# Every module but the server's, whose dependencies are the "server" extra.
for module in pkgutil.walk_packages(redismem.__path__, "redismem."):
    if module.name != "redismem.__main__" and ".server" not in module.name:
        importlib.import_module(module.name)
store = redismem.MemoryStore(connect(sys.argv[1]))
store.put("wheel", "k", {"ok": True})
print(store.get("wheel", "k").value["ok"], store.changes("wheel").items[0].op)
"""


def test_the_wheel_installs_in_a_fresh_venv_and_puts_and_gets(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
         str(tmp_path / "dist"), str(ROOT)],
        check=True,
        timeout=180,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("redismem-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    packages = {
        str(init.relative_to(ROOT)) for init in (ROOT / "redismem").rglob("__init__.py")
    }
    scripts = {f"redismem/lua/{lua.name}" for lua in (ROOT / "lua").glob("*.lua")}
    assert packages | scripts <= shipped

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(wheel)],
        check=True,
        timeout=300,
    )

    # Run outside the checkout, so only the installed wheel can be imported.
    result = subprocess.run(
        [str(python), "-c", SMOKE, redis_server.url],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "create"]

    # The console script, as the README's first command runs it.
    demo = subprocess.run(
        [str(venv / "bin" / "redismem"), "demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert demo.returncode == 0, demo.stderr
    assert "embedded mode" in demo.stdout
