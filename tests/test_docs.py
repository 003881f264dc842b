"""Every code example in docs/ runs: python blocks in one namespace per page, and bnbench commands of shell blocks.

A block preceded by the line ``<!-- not run: REASON -->`` is skipped. A shell block that
is not skipped may contain only ``bnbench`` commands, which run in-process, in page
order, in a temporary working directory shared with the page's python blocks.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from bnbench.cli import main
from bnbench.estimators.registry import _BUILTIN

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = sorted(DOCS.glob("*.md"))
SHELL = ("bash", "sh", "shell", "console")
FENCE = re.compile(
    r"^(?:<!-- not run: (?P<reason>[^\n]*?) -->\n)?```(?P<language>[\w-]*)\n(?P<body>.*?)^```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
LINK = re.compile(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)")


@dataclass(frozen=True)
class Block:
    line: int
    language: str
    body: str
    skip_reason: str | None


def code_blocks(text: str) -> list[Block]:
    return [
        Block(text.count("\n", 0, match.start("body")) + 1, match["language"], match["body"], match["reason"])
        for match in FENCE.finditer(text)
    ]


def shell_commands(block: Block) -> list[str]:
    """The command lines of a shell block (``$ `` prompts stripped, comments and blank lines dropped)."""
    commands = []
    for line in block.body.splitlines():
        line = line.strip().removeprefix("$ ")
        if line and not line.startswith("#"):
            commands.append(line)
    return commands


@pytest.mark.parametrize("page", PAGES, ids=lambda path: path.name)
def test_page_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem.replace('-', '_')}"}
    for block in code_blocks(page.read_text(encoding="utf-8")):
        if block.skip_reason is not None:
            continue
        where = f"{page.name}:{block.line}"
        if block.language == "python":
            exec(compile(block.body, where, "exec"), namespace)  # noqa: S102 - the documentation's own examples
        elif block.language in SHELL:
            for command in shell_commands(block):
                arguments = shlex.split(command)
                assert arguments[0] == "bnbench", (
                    f"{where}: '{command}' is not a bnbench command; mark the block '<!-- not run: REASON -->'"
                )
                assert main(arguments[1:]) == 0, f"{where}: '{command}' failed"


@pytest.mark.parametrize("page", PAGES, ids=lambda path: path.name)
def test_page_links_resolve(page):
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if "://" not in target:
            assert (page.parent / target).is_file(), f"{page.name} links to {target}, which does not exist"


def test_code_blocks_found():
    # The block parser itself: a marked block keeps its reason, line numbers count from 1.
    text = "intro\n```python\nx = 1\n```\n<!-- not run: slow -->\n```bash\nbnbench run\n```\n"
    blocks = code_blocks(text)
    assert [(b.line, b.language, b.skip_reason) for b in blocks] == [(3, "python", None), (7, "bash", "slow")]
    assert shell_commands(blocks[1]) == ["bnbench run"]


def test_every_builtin_estimator_documented():
    text = (DOCS / "estimators.md").read_text(encoding="utf-8")
    for name in _BUILTIN:
        assert f"`{name}`" in text, f"built-in estimator {name!r} is missing from docs/estimators.md"


def test_every_metric_documented():
    text = (DOCS / "metrics.md").read_text(encoding="utf-8")
    for key in ("fit_s", "conditional_s", "generate_rows_per_s", "peak_memory_mb", "kl", "kl_smoothed", "tv",
                "heldout_ll", "heldout_ll_smoothed", "mle_max_abs_diff", "mle_mean_abs_diff", "generated_family_tv",
                "generated_joint_tv", "unseen_parent_mass", "unidentified_fraction", "infinite_kl_fraction"):
        assert f"`{key}`" in text, f"metric {key!r} is missing from docs/metrics.md"
