import numpy as np
import torch

from rlworks.track.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint


def test_nested_state_round_trips_bit_identically(tmp_path):
    opt_param = torch.nn.Parameter(torch.randn(3))
    opt = torch.optim.Adam([opt_param])
    opt_param.sum().backward()
    opt.step()
    rng = np.random.default_rng(5)
    gen = torch.Generator().manual_seed(3)
    state = {
        "w": torch.randn(4, 4, dtype=torch.float64), "arr": np.arange(6, dtype=np.int16),
        "opt": opt.state_dict(), "np_rng": rng.bit_generator.state, "torch_rng": gen.get_state(),
        "nested": [1, 2.5, None, "x", (True, False)], "mask": None,
    }
    save_checkpoint(tmp_path, 7, state, meta={"algo": "ppo"})
    step, got, meta = load_checkpoint(latest_checkpoint(tmp_path))
    assert step == 7 and meta == {"algo": "ppo"}
    assert torch.equal(got["w"], state["w"]) and got["w"].dtype == torch.float64
    assert isinstance(got["arr"], np.ndarray) and np.array_equal(got["arr"], state["arr"])
    assert got["nested"] == [1, 2.5, None, "x", (True, False)] and got["mask"] is None
    assert got["np_rng"] == state["np_rng"]
    # The restored optimiser state loads and has int keys as torch expects.
    opt.load_state_dict(got["opt"])
    assert set(got["opt"]["state"]) == {0}
    gen2 = torch.Generator()
    gen2.set_state(got["torch_rng"])
    assert torch.equal(torch.rand(3, generator=gen2), torch.rand(3, generator=gen))


def test_no_partial_checkpoint_is_visible(tmp_path):
    save_checkpoint(tmp_path, 1, {"a": np.zeros(2)})
    (tmp_path / "step_000000000002.safetensors.tmp").write_bytes(b"garbage")
    (tmp_path / "step_000000000002.safetensors").write_bytes(b"orphan without json")
    assert latest_checkpoint(tmp_path).name == "step_000000000001.json"
