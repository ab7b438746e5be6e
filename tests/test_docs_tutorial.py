"""The Python examples of docs/tutorial.md, section 6, run as written."""

import re
from pathlib import Path

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.md"


def test_extension_examples_of_the_tutorial_run(capsys):
    text = TUTORIAL.read_text()
    section = text[text.index("## 6. Extend dmoe"):]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 3
    namespace = {"__name__": "tutorial"}
    for block in blocks:
        exec(compile(block, str(TUTORIAL), "exec"), namespace)
    printed = capsys.readouterr().out
    assert "'des'" in printed and "strongest_links" in printed and "flat_umi" in printed
