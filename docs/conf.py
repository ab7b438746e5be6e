"""Sphinx configuration of the dmoe documentation site (``make docs``).

The Markdown pages of ``docs/`` are read by MyST, the notebooks of ``docs/notebooks/`` are
executed on every build (MyST-NB), and the API reference is generated from the ``__all__`` of
each public package: a name added to ``__all__`` appears in the reference without a docs edit.
``make docs`` builds with warnings as errors and ``nitpicky`` on, so a broken docstring or a
reference to a dmoe name that does not exist fails the build.
"""

import importlib
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = Path(__file__).resolve().parent

project = "dmoe"
author = "dmoe contributors"
copyright = "dmoe contributors"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]

root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "jupyter_execute"]
html_theme = "alabaster"
html_title = "dmoe"

# Markdown pages and notebooks.
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
# The notebooks are stored without outputs: execute each one on every build and fail on error.
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_timeout = 300
nb_execution_show_tb = True
# TensorFlow's start-up messages on stderr are not part of the lesson.
nb_output_stderr = "remove"

# Docstrings are numpydoc-formatted with Sionna's "Input" / "Output" sections.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
# Parameter names ending in "_" (as_) are escaped, not read as RST link references.
strip_signature_backslash = True
# An "Attributes" section becomes fields, so a documented property is not described twice.
napoleon_use_ivar = True
napoleon_custom_sections = [("Input", "params_style"), ("Output", "returns_style")]

autodoc_member_order = "bysource"
autodoc_typehints = "none"
# A method overriding a Keras one without a docstring of its own shows none, not Keras's text.
autodoc_inherit_docstrings = False
autosummary_generate = True

# Every cross-reference must resolve; see missing_reference for what counts as resolved.
nitpicky = True

# The public packages whose ``__all__`` makes up the API reference.
API_PACKAGES = {
    "dmoe.phy": "Channels, path loss, planning rates and link realisation (Sionna).",
    "dmoe.moe": "The Mixture-of-Experts model: relevance scores, experts, accuracy, gate traces.",
    "dmoe.scheduler": "Expert selection (P1), joint expert and subcarrier allocation (P2), "
                      "baselines and exact references.",
    "dmoe.cosim": "Studies, the protocol engine, executors, the result store and figures.",
}

# id(object) -> the full name it is documented under (filled by write_api_pages).
DOCUMENTED = {}


def _write_if_changed(path, text):
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def _is_value(obj):
    # Equal constants (two tuples of mode names) may share an id; they are documented apiece.
    return isinstance(obj, (str, int, float, tuple, frozenset, dict, list))


def write_api_pages(out_dir=HERE / "api"):
    """Write ``api/index.rst`` and one autosummary page per package from its ``__all__``.

    A class or function exported by several packages is documented under the first one that
    exports it; the later ones link to it, so each object has exactly one description.
    """
    out_dir.mkdir(exist_ok=True)
    pages = set()
    for package, blurb in API_PACKAGES.items():
        module = importlib.import_module(package)
        own, shared = [], []
        for name in module.__all__:
            obj = getattr(module, name)
            if not _is_value(obj) and id(obj) in DOCUMENTED:
                shared.append((name, DOCUMENTED[id(obj)]))
                continue
            if not _is_value(obj):
                DOCUMENTED[id(obj)] = f"{package}.{name}"
            own.append(name)
        lines = [package, "=" * len(package), "", blurb, "",
                 f".. currentmodule:: {package}", "",
                 ".. autosummary::", "   :toctree: generated", "   :nosignatures:", ""]
        lines += [f"   {name}" for name in own]
        pages |= {f"{package}.{name}.rst" for name in own}
        if shared:
            lines += ["", "Also exported here, documented where linked:", ""]
            lines += [f"- ``{name}``: :obj:`{target}`" for name, target in shared]
        _write_if_changed(out_dir / f"{package}.rst", "\n".join(lines) + "\n")
    index = ["API reference", "=============", "",
             "Every public name of the four packages (their ``__all__``), from the numpydoc "
             "docstrings.", "", ".. toctree::", "   :maxdepth: 1", ""]
    index += [f"   {package}" for package in API_PACKAGES]
    _write_if_changed(out_dir / "index.rst", "\n".join(index) + "\n")
    # The page of a name no longer exported would be a document outside every toctree.
    for stale in (out_dir / "generated").glob("*.rst"):
        if stale.name not in pages:
            stale.unlink()


_SECTION_WITH_NOTE = re.compile(r"^(\s*)(Input|Output)\s+\((.+)\)\s*$")


def _split_section_notes(lines):
    """``Input (:meth:`transmit`)`` headers: a line naming the method, then a plain header."""
    out = []
    underline_next = None
    for number, line in enumerate(lines):
        if underline_next is not None:
            out.append(underline_next)
            underline_next = None
            continue
        match = _SECTION_WITH_NOTE.match(line)
        following = lines[number + 1] if number + 1 < len(lines) else ""
        if match and following.strip() and set(following.strip()) == {"-"}:
            indent, section, note = match.groups()
            out += ["", f"{indent}{section} of {note}:", "", f"{indent}{section}"]
            underline_next = indent + "-" * len(section)
        else:
            out.append(line)
    return out


def _module_comment(obj, name):
    """The ``#:`` comment of constant ``name`` in the dmoe module that defines it, or None."""
    from sphinx.pycode import ModuleAnalyzer

    for modname, module in sorted(sys.modules.items()):
        if modname.startswith("dmoe.") and getattr(module, name, None) is obj:
            try:
                comment = ModuleAnalyzer.for_module(modname).find_attr_docs().get(("", name))
            except Exception:  # no source to analyse
                comment = None
            if comment:
                return list(comment)
    return None


def process_docstring(app, what, name, obj, options, lines):
    if what in ("data", "attribute") and _is_value(obj):
        type_doc = [line.strip() for line in (type(obj).__doc__ or "").splitlines() if line.strip()]
        text = [line.strip() for line in lines if line.strip()]
        if text and text[0] == type_doc[0]:
            # A constant without a comment where it is exported: autodoc fell back to the
            # docstring of its type (tuple, dict), which says nothing about it.
            lines[:] = _module_comment(obj, name.rsplit(".", 1)[-1]) or []
    lines[:] = _split_section_notes(lines)


def rejoin_inline_type(app, what, name, obj, options, lines):
    """Undo napoleon reading ``Columns that measure wall time: they differ...`` as a type.

    Napoleon takes the text before the first colon of a constant's comment for its type;
    a "type" with a space in it was the start of the sentence.
    """
    if what not in ("data", "attribute"):
        return
    for number, line in enumerate(lines):
        if line.startswith(":type: ") and " " in line[len(":type: "):].strip():
            head = line[len(":type: "):].strip()
            del lines[number]
            if number > 0 and not lines[number - 1].strip():
                del lines[number - 1]
            first = next((i for i, text in enumerate(lines) if text.strip()), None)
            if first is None:
                lines[:] = [head]
            else:
                lines[first] = f"{head}: {lines[first].lstrip()}"
            return


def _resolve_python(path):
    """The object a dotted ``path`` names, or None."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except Exception:
            continue
        try:
            for part in parts[cut:]:
                obj = getattr(obj, part)
        except AttributeError:
            return None
        return obj
    return None


# Not a name: a numpydoc type field's prose ("optional", "float32", "K", "same shape",
# "{"milp", "enumerate"}", "JSON-serialisable").
_PROSE = re.compile(r"^[a-z_][a-z0-9_]*$|^[A-Z]$|[^A-Za-z0-9_.]")


def missing_reference(app, env, node, contnode):
    """Resolve what Sphinx could not, or leave it to fail the build.

    - a dmoe object named by its defining module (``dmoe.cosim.config.SCHEMES``) links to the
      page that documents it (``dmoe.cosim.SCHEMES``);
    - a dmoe name that exists but is not public (a private helper, a module constant) and a
      name from another library are shown as code without a link;
    - the prose of a numpydoc type field is left alone;
    - anything else (a misspelt, renamed or removed name) stays a warning, hence an error.
    """
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip(".~")
    module, cls = node.get("py:module"), node.get("py:class")
    candidates = [target]
    if module and cls:
        candidates.append(f"{module}.{cls}.{target}")
    if module:
        candidates.append(f"{module}.{target}")
    for candidate in candidates:
        obj = _resolve_python(candidate) if "." in candidate else None
        if obj is None:
            continue
        documented = DOCUMENTED.get(id(obj))
        if documented and documented != candidate:
            found = env.domains["py"].resolve_xref(
                env, node["refdoc"], app.builder, node["reftype"], documented, node, contnode)
            if found is not None:
                return found
        return contnode
    head = target.split(".")[0]
    if head != "dmoe" and (head in sys.modules or _resolve_python(head) is not None):
        return contnode  # another library's name (numpy.random.Generator, os.PathLike)
    if "." not in target and any(
            hasattr(mod, target) for name, mod in list(sys.modules.items())
            if name.startswith("dmoe.") and mod is not None):
        return contnode  # a dmoe name that is not public (SCENARIO_HEIGHTS_M, _extrapolate_tail)
    if node["reftype"] == "class" and _PROSE.search(target):
        return contnode
    return None


def setup(app):
    app.connect("autodoc-process-docstring", process_docstring, priority=400)
    app.connect("autodoc-process-docstring", rejoin_inline_type, priority=600)
    app.connect("missing-reference", missing_reference, priority=900)


write_api_pages()
