"""The dashboard's static files: its page, script and stylesheet (from this package) and Plotly.js (from
the installed plotly package, so the page never needs the internet). The live server and the offline
report both take them from here."""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path


@functools.lru_cache(maxsize=1)
def plotly_js() -> bytes:
    """Plotly.js as shipped inside the installed ``plotly`` package: the page never needs the internet."""
    import plotly

    return (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes()


def static_assets() -> dict[str, tuple[bytes, str]]:
    """The whitelist: URL path → (bytes, content type). Read once; requests never touch the disk."""
    folder = resources.files("nas.app.dashboard") / "static"
    text = {"/": ("index.html", "text/html; charset=utf-8"),
            "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
            "/static/style.css": ("style.css", "text/css; charset=utf-8")}
    assets = {url: ((folder / name).read_bytes(), kind) for url, (name, kind) in text.items()}
    assets["/static/plotly.min.js"] = (plotly_js(), "text/javascript; charset=utf-8")
    return assets
