"""A result is written one way: JSON, whole or not at all, with the provenance it was stamped with."""

import json
from pathlib import Path

import torch
from vanilla_flash.results import provenance


def test_a_result_is_written_whole_as_utf8_json_with_what_is_not_json_as_text(tmp_path):
    result = {**provenance.provenance(), "kind": "example", "note": "tiếng Việt", "dtype": torch.bfloat16,
              "path": Path("runs/x")}  # fmt: skip
    path = provenance.write_json(tmp_path / "new/folder/result.json", result)
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n") and "tiếng Việt" in text
    back = json.loads(text)
    assert back["dtype"] == "torch.bfloat16" and back["path"] == "runs/x" and back["commit"] == result["commit"]
    assert [p.name for p in path.parent.iterdir()] == ["result.json"]  # nothing partial left beside it
