"""Sphinx configuration for satchel's documentation site (``python3 dev.py docs``)."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "src"), str(HERE / "_ext")]

import satchel  # noqa: E402  (the source tree above, not an installed copy)

# Pyramid imports pkg_resources, which warns on import; the API page imports Pyramid.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

project = "satchel"
author = "The satchel developers"
copyright = "2026, The satchel developers"
release = satchel.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "public_names",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext"]

# "[settings](caching.md#settings)" links between pages resolve to headings.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]

autodoc_default_options = {
    "members": True,
    "undoc-members": True,
    "show-inheritance": True,
    "member-order": "bysource",
}
autodoc_typehints = "signature"
# Packages re-export names from their modules (satchel.Session, satchel.stores.Store),
# so a bare name in a signature matches several documented objects; the first one
# is as good as the other. Broken links and references still fail the build.
suppress_warnings = ["ref.python"]
autodoc_preserve_defaults = True

html_theme = "furo"
html_title = f"satchel {release}"
html_static_path: list[str] = []
autodoc_inherit_docstrings = False  # a framework base class's docstring is not ours to render
