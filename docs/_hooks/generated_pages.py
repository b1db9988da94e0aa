"""MkDocs hooks: pages made from files that live elsewhere in the repository.

- The notebooks in `notebooks/` become pages (markdown cells as they are, code cells as code
  blocks; they are stored without outputs and are not run) plus a copy of each `.ipynb`.
- `<!-- cli-help: COMMAND -->` in a page becomes the output of `trellis-ts COMMAND --help`
  (`<!-- cli-help: -->` for the top level), taken from `python -m trellis_ts`, so the command
  line reference cannot drift from the options.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
CLI_HELP = re.compile(r"<!-- cli-help: *([a-z-]*) *-->")


def _notebook_page(path: Path) -> str:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    parts = []
    for cell in notebook["cells"]:
        source = "".join(cell["source"]).rstrip()
        if not source:
            continue
        if cell["cell_type"] == "markdown":
            parts.append(source)
        elif cell["cell_type"] == "code":
            parts.append(f"```python\n{source}\n```")
    note = (
        f"*This page is `notebooks/{path.name}` as stored, without outputs. Download "
        f"[{path.name}]({path.name}) and run it with Jupyter after the `dev` install "
        f'(`pip install -c constraints.txt -e ".[dev]"`).*'
    )
    first = parts[0].split("\n", 1) if parts else ["# " + path.stem]
    if first[0].startswith("# "):  # the note goes under the notebook's own title
        parts[0] = first[0] + "\n\n" + note + ("\n\n" + first[1] if len(first) > 1 else "")
    else:
        parts.insert(0, f"# {path.stem}\n\n{note}")
    return "\n\n".join(parts) + "\n"


def on_files(files, config):
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        files.append(
            File.generated(config, f"notebooks/{path.stem}.md", content=_notebook_page(path))
        )
        files.append(File.generated(config, f"notebooks/{path.name}", content=path.read_bytes()))
    return files


_help_cache: dict[str, str] = {}

# One interpreter for every `--help`: `python -m trellis_ts COMMAND --help` run in a loop.
_DRIVER = """
import contextlib, io, json, runpy, sys
texts = {}
for command in sys.argv[1:]:
    sys.argv = ["trellis-ts", *([command] if command else []), "--help"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            runpy.run_module("trellis_ts", run_name="__main__")
        except SystemExit as stop:
            if stop.code:
                raise
    texts[command] = out.getvalue()
print(json.dumps(texts))
"""


def _cli_help(commands: list[str]) -> dict[str, str]:
    env = dict(os.environ, COLUMNS="100", TERMINAL_WIDTH="100", NO_COLOR="1", TERM="dumb")
    done = subprocess.run(
        [sys.executable, "-c", _DRIVER, *commands],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"`trellis-ts COMMAND --help` failed:\n{done.stderr}")
    texts = json.loads(done.stdout)
    return {
        c: "\n".join(line.rstrip() for line in t.strip("\n").splitlines()) for c, t in texts.items()
    }


def on_page_markdown(markdown, page, config, files):
    commands = [c for c in dict.fromkeys(CLI_HELP.findall(markdown)) if c not in _help_cache]
    if commands:
        _help_cache.update(_cli_help(commands))
    return CLI_HELP.sub(lambda m: "```text\n" + _help_cache[m.group(1)] + "\n```", markdown)
