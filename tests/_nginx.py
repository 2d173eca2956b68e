"""deploy/nginx's helper for the tests (deploy/ holds files to ship, not a package), and the
fixture that makes sure Debian's nginx is installed (scripts/install_nginx.sh, as `make test`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NGINX_DIR = ROOT / "deploy" / "nginx"
INSTALL_SCRIPT = ROOT / "scripts" / "install_nginx.sh"
if str(NGINX_DIR) not in sys.path:
    sys.path.insert(0, str(NGINX_DIR))

import nginx_lb  # noqa: E402


def ensure_nginx() -> str:
    """The nginx binary, installed by the project's script when missing; an error saying how
    to install it when that is not possible (not root, no package source)."""
    done = subprocess.run(
        ["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"nginx is needed and could not be installed:\n{done.stderr}")
    return nginx_lb.nginx_binary()


__all__ = ["NGINX_DIR", "ensure_nginx", "nginx_lb"]
