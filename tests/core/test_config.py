from dataclasses import dataclass
from typing import Literal

import pytest

from rlworks.core.config import (
    coerce,
    config_from_dict,
    config_hash,
    field_docs,
    load_config_file,
)
from rlworks.core.errors import UserError


@dataclass(frozen=True)
class Toy:
    lr: float = 1e-3
    """Step size."""
    steps: int = 10
    """How many."""
    kl: float | None = None
    """Optional."""
    sizes: tuple[int, ...] = (64, 64)
    """Widths."""
    mode: Literal["a", "b"] = "a"
    """Mode."""
    flag: bool = False
    """A switch."""


def test_docstrings_are_the_help():
    assert field_docs(Toy) == {"lr": "Step size.", "steps": "How many.", "kl": "Optional.",
                               "sizes": "Widths.", "mode": "Mode.", "flag": "A switch."}


def test_coercion_from_strings():
    cfg = config_from_dict(Toy, {"lr": "3e-4", "steps": "1e5", "kl": "none", "sizes": "32,16",
                                 "mode": "b", "flag": "true"})
    assert cfg == Toy(3e-4, 100_000, None, (32, 16), "b", True)
    assert coerce("0.1", float | None, "kl") == 0.1


@pytest.mark.parametrize("data,needle", [
    ({"lrr": 1}, "did you mean 'lr'"),
    ({"steps": 0.5}, "'steps' must be an integer"),
    ({"steps": True}, "'steps' must be an integer"),
    ({"lr": "fast"}, "'lr' must be a number"),
    ({"mode": "c"}, "'mode' must be one of"),
    ({"flag": "maybe"}, "'flag' must be true or false"),
])
def test_bad_values_name_the_key(data, needle):
    with pytest.raises(UserError, match=needle):
        config_from_dict(Toy, data)


def test_hash_is_stable_and_sensitive():
    assert config_hash(Toy()) == config_hash(Toy())
    assert config_hash(Toy()) != config_hash(Toy(lr=2e-3))


def test_config_files(tmp_path):
    (tmp_path / "a.toml").write_text('lr = 0.01\nsizes = [8, 8]\n')
    (tmp_path / "a.yaml").write_text('lr: 0.01\nsizes: [8, 8]\n')
    for name in ("a.toml", "a.yaml"):
        cfg = config_from_dict(Toy, load_config_file(tmp_path / name))
        assert cfg.lr == 0.01 and cfg.sizes == (8, 8)
    (tmp_path / "bad.toml").write_text("lr = = 1")
    with pytest.raises(UserError, match="malformed"):
        load_config_file(tmp_path / "bad.toml")
