"""Offline-to-online fine-tuning (WSRL and the retained-data baseline) from a tiny CQL run:
the pretrained agent loads exactly, WSRL keeps no offline data and does not update during its
warm-up, the baseline starts from exactly the dataset, the update-to-data ratio, bit-identical
resume on Pendulum-v1, and `rlworks offline train wsrl --init RUN_ID` with its bad inputs."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

import rlworks.algos.offline  # noqa: F401  (registers)
from rlworks.algos.offline.configs import CQLConfig, WSRLConfig
from rlworks.algos.offline.cql import CQL
from rlworks.algos.offline.finetune import FineTune
from rlworks.cli.main import main
from rlworks.core.config import config_from_dict
from rlworks.core.errors import UserError
from rlworks.core.registry import ALGORITHMS
from rlworks.core.seeding import torch_generator
from rlworks.data.collector import env_state
from rlworks.data.formats import load_dataset
from rlworks.track.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from rlworks.track.store import RunStore

HIDDEN = (16, 16)
TINY = {"batch_size": 16, "utd": 2, "steps_per_iter": 10, "warmup_steps": 30,
        "total_steps": 100, "hidden_sizes": HIDDEN, "eval_episodes": 1}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, pendulum_path):
    """A 300-gradient-step CQL run through the driver (normalised observations, so the
    statistics must travel too): (store path, run id, its checkpoint)."""
    from rlworks.exec import train as driver

    root = tmp_path_factory.mktemp("store")
    cfg = driver.build_config("cql", {
        "dataset": pendulum_path, "total_steps": 300, "steps_per_iter": 100, "batch_size": 32,
        "hidden_sizes": HIDDEN, "n_actions": 2, "normalize_obs": True, "eval_episodes": 1})
    summary = driver.train("cql", cfg, RunStore(root), progress=False)
    path = latest_checkpoint(RunStore(root).run_dir(summary["run_id"]) / "checkpoints")
    assert path is not None and summary["global_step"] == 300
    return root, summary["run_id"], path


def finetune(algo: str, dataset: str, checkpoint, **extra) -> FineTune:
    spec = ALGORITHMS.get(algo)
    cfg = config_from_dict(WSRLConfig, {**TINY, **dict(spec.overrides), "dataset": dataset,
                                        "init_checkpoint": str(checkpoint), **extra})
    learner = spec.learner_class()(cfg)
    assert isinstance(learner, FineTune)
    return learner


def flat_state(state, prefix=""):
    out = {}
    if isinstance(state, dict):
        for k, v in state.items():
            out |= flat_state(v, f"{prefix}/{k}")
    elif isinstance(state, list | tuple):
        for i, v in enumerate(state):
            out |= flat_state(v, f"{prefix}/{i}")
    elif isinstance(state, torch.Tensor | np.ndarray):
        out[prefix] = torch.as_tensor(np.asarray(state))
    else:
        out[prefix] = state
    return out


def assert_same_state(a: dict, b: dict) -> None:
    fa, fb = flat_state(a), flat_state(b)
    assert fa.keys() == fb.keys()
    for key in fa:
        if isinstance(fa[key], torch.Tensor):
            assert torch.equal(fa[key], fb[key]), key
        else:
            assert fa[key] == fb[key], key


def test_loading_the_cql_checkpoint_reproduces_the_pretrained_agent(pretrained, pendulum_path):
    root, run_id, path = pretrained
    _, state, meta = load_checkpoint(path)
    assert meta["algo"] == "cql"
    record = RunStore(root).get_run(run_id)
    cql = CQL(config_from_dict(CQLConfig, record.config))
    cql.load_state_dict(state)
    learner = finetune("wsrl", pendulum_path, path)
    obs = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32) * 3.0
    np.testing.assert_array_equal(learner.act(obs), cql.act(obs))  # bit for bit
    assert np.any(learner.obs_std != 1.0)  # the run normalised observations
    for name in ("actor", "critic", "critic_target"):
        a, b = getattr(learner, name).state_dict(), getattr(cql, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert torch.equal(learner.log_alpha.detach(), cql.log_alpha.detach())
    # Adam moments carry over (the critics' buffer is a prefix of CQL's)
    moments = learner.actor_opt.state_dict()["state"][0]["exp_avg"]
    assert torch.equal(moments, cql.actor_opt.state_dict()["state"][0]["exp_avg"])
    assert learner.actor_opt.param_groups[0]["lr"] == 1e-4
    assert learner.target_entropy == -0.5  # -dim(A) / 2, the authors' code


def test_wsrl_keeps_no_offline_data_and_does_not_update_during_warmup(pretrained,
                                                                      pendulum_path):
    _, _, path = pretrained
    learner = finetune("wsrl", pendulum_path, path)
    before = {k: v.clone() for k, v in learner.actor.state_dict().items()}
    critic_before = {k: v.clone() for k, v in learner.critic.state_dict().items()}
    assert learner.offline is None and learner.buffer.num_transitions() == 0
    for _ in range(3):  # the 30 warm-up steps
        metrics = learner.iterate()
    assert learner.global_step == 30 and learner.critic_updates == learner.actor_updates == 0
    assert metrics == {"train/critic_updates": 0.0}
    assert all(torch.equal(before[k], v) for k, v in learner.actor.state_dict().items())
    assert all(torch.equal(critic_before[k], v) for k, v in learner.critic.state_dict().items())

    # The buffer holds the 30 online transitions and no dataset row...
    assert learner.buffer.num_transitions() == 30
    online = learner.buffer.obs[:30, 0]
    dataset = load_dataset(pendulum_path).observations
    assert not (online[:, None, :] == dataset[None, :, :]).all(-1).any()
    # ...collected by the pretrained policy, sampled with the collection stream's noise.
    gen = torch_generator(learner.cfg.seed, "finetune", "collect")
    with torch.no_grad():
        x = learner._normalise(torch.from_numpy(online))
        noise = torch.cat([torch.randn((1, 1), generator=gen) for _ in range(30)])
        expected = learner.actor.sample(x, noise)
    torch.testing.assert_close(torch.from_numpy(learner.buffer.actions[:30, 0]), expected)

    learner.iterate()  # 10 env steps after the warm-up: utd = 2 critic updates each
    assert learner.critic_updates == 20 and learner.actor_updates == 10
    assert not all(torch.equal(before[k], v) for k, v in learner.actor.state_dict().items())


def test_retain_starts_with_exactly_the_dataset_and_samples_the_union(pretrained,
                                                                      pendulum_path):
    _, _, path = pretrained
    ds = load_dataset(pendulum_path)
    learner = finetune("finetune", pendulum_path, path)
    assert learner.cfg.mode == "retain" and learner.cfg.warmup_steps == 0
    off = learner.offline
    assert off is not None and learner.buffer.num_transitions() == 0
    np.testing.assert_array_equal(off.obs.numpy(), ds.observations)
    np.testing.assert_array_equal(off.next_obs.numpy(), ds.next_observations)
    np.testing.assert_allclose(off.actions.numpy(), ds.actions / 2.0, atol=1e-7)  # [-1, 1]
    np.testing.assert_array_equal(off.rewards.numpy(), ds.rewards)
    np.testing.assert_array_equal(off.discounts.numpy(), np.where(ds.terminations, 0.0, 0.99)
                                  .astype(np.float32))
    rows = learner.sample(500)  # nothing online yet: every row is a dataset row
    raw = (rows.obs * learner._std_t + learner._mean_t).numpy()
    dataset = torch.from_numpy(np.array(ds.observations))
    assert all(torch.isclose(dataset, torch.from_numpy(r), atol=1e-5).all(-1).any()
               for r in raw[:50])

    learner.iterate()  # no warm-up: updates from the first env step
    assert learner.critic_updates == 20 and learner.buffer.num_transitions() == 10
    rows = learner.sample(40_000)
    n_online = 10
    is_online = ~torch.isin(rows.rewards, off.rewards)  # rewards identify the source
    share = is_online.float().mean().item()
    assert share == pytest.approx(n_online / (len(ds) + n_online), abs=0.002)


def test_update_to_data_ratio(pretrained, pendulum_path):
    _, _, path = pretrained
    learner = finetune("wsrl", pendulum_path, path, utd=3, warmup_steps=25)
    for _ in range(5):
        metrics = learner.iterate()
    # 25 warm-up steps, then 3 critic updates and 1 actor update per env step
    assert learner.global_step == 50
    assert learner.critic_updates == 3 * 25 and learner.actor_updates == 25
    assert metrics["train/critic_updates"] == 75.0
    assert {"train/q_loss", "train/q_data", "train/actor_loss", "train/alpha",
            "train/entropy"} <= set(metrics)
    assert all(np.isfinite(v) for v in metrics.values())


@pytest.mark.parametrize("algo", ["wsrl", "finetune"])
def test_resume_on_pendulum_is_bit_identical(algo, pretrained, pendulum_path, tmp_path):
    _, _, path = pretrained
    straight = finetune(algo, pendulum_path, path, backend="native")
    if env_state(straight.envs) is None:
        pytest.skip("the env backend cannot snapshot its state (no native Pendulum-v1 here)")
    for _ in range(6):
        last = straight.iterate()

    first = finetune(algo, pendulum_path, path, backend="native")
    for _ in range(4):  # past the warm-up, so replay, optimisers and generators all matter
        first.iterate()
    json_path = save_checkpoint(tmp_path, first.global_step, first.state_dict())
    resumed = finetune(algo, pendulum_path, path, backend="native")
    step, state, _ = load_checkpoint(json_path)
    resumed.load_state_dict(state)
    assert resumed.global_step == step == 40
    resumed.iterate()
    got = resumed.iterate()
    assert got == last
    assert_same_state(straight.state_dict(), resumed.state_dict())


def test_bad_checkpoints_are_one_line_errors(pretrained, pendulum_path, bandit_path, tmp_path):
    _, _, path = pretrained
    with pytest.raises(UserError, match="hidden sizes \\(16, 16\\).*--hidden-sizes 16,16"):
        finetune("wsrl", pendulum_path, path, hidden_sizes=(32, 32))
    with pytest.raises(UserError, match="pretrained on another dataset"):
        finetune("wsrl", bandit_path, path)
    with pytest.raises(UserError, match="does not exist"):
        finetune("wsrl", pendulum_path, tmp_path / "missing.json")
    _, state, _ = load_checkpoint(path)
    other = save_checkpoint(tmp_path / "iql", 1, state, meta={"algo": "iql"})
    with pytest.raises(UserError, match="from a 'iql' run"):
        finetune("wsrl", pendulum_path, other)
    # a directory finds its latest checkpoint
    assert finetune("wsrl", pendulum_path, path.parent).global_step == 0


def test_finetune_preset_differs_from_wsrl_only_in_its_declared_keys():
    spec = ALGORITHMS.get("finetune")
    assert spec.config_class() is WSRLConfig and ALGORITHMS.get("wsrl").overrides == ()
    base, preset = WSRLConfig(), config_from_dict(WSRLConfig, dict(spec.overrides))
    changed = {f.name for f in dataclasses.fields(WSRLConfig)
               if getattr(base, f.name) != getattr(preset, f.name)}
    assert changed == {k for k, _ in spec.overrides} == {"mode", "warmup_steps"}
    assert base.mode == "wsrl" and base.warmup_steps == 5_000 and base.utd == 4


# ----------------------------------------------------------------------------- CLI
CLI_TINY = ["--total-steps", "30", "--steps-per-iter", "10", "--warmup-steps", "10",
            "--batch-size", "16", "--utd", "2", "--eval-episodes", "1", "--no-progress"]


def cli(capsys, store, *argv) -> tuple[int, str, str]:
    code = main(["--store", str(store), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_init_fine_tunes_the_run_s_latest_checkpoint(pretrained, capsys):
    root, run_id, path = pretrained
    code, out, err = cli(capsys, root, "offline", "train", "wsrl", "--init", run_id, "--json",
                         *CLI_TINY)
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["algo"] == "wsrl" and summary["global_step"] == 30
    record = RunStore(root).get_run(summary["run_id"])
    cql = RunStore(root).get_run(run_id)
    assert record.config["init_checkpoint"] == str(path) and record.status == "finished"
    for key in ("dataset", "env_id", "hidden_sizes"):
        assert record.config[key] == cql.config[key], key
    assert "eval_normalised_score" in summary
    RunStore(root).delete_run(summary["run_id"])


CLI_BAD = {
    "unknown run": (["wsrl", "--init", "zzzzzzzz"], "unknown run id 'zzzzzzzz'"),
    "run of another algorithm": (["wsrl", "--init", "{bc}"], "is a bc run"),
    "run without checkpoint": (["finetune", "--init", "{empty}"], "has no checkpoint"),
    "another dataset": (["wsrl", "--init", "{cql}", "--dataset", "{bandit}"],
                        "was trained with dataset"),
    "other hidden sizes": (["wsrl", "--init", "{cql}", "--hidden-sizes", "32,32"],
                           "hidden_sizes (16, 16)"),
    "init for an offline algorithm": (["iql", "--init", "{cql}"], "drop --init"),
    "no init": (["wsrl", "--dataset", "{pendulum}"], "pass --init RUN_ID"),
    "init and resume": (["wsrl", "--init", "{cql}", "--resume", "{cql}"], "--resume"),
}


@pytest.mark.parametrize("case", sorted(CLI_BAD))
def test_cli_init_errors_are_one_line_exit_2(case, pretrained, pendulum_path, bandit_path,
                                             capsys):
    root, run_id, _ = pretrained
    store = RunStore(root)
    fake = {"dataset": pendulum_path, "env_id": "Pendulum-v1", "hidden_sizes": list(HIDDEN)}
    ids = {"cql": run_id, "pendulum": pendulum_path, "bandit": bandit_path,
           "bc": store.create_run("bc", "Pendulum-v1", 0, fake, "x"),
           "empty": store.create_run("cql", "Pendulum-v1", 0, fake, "x")}
    before = {r.run_id for r in store.list_runs()}
    argv, needle = CLI_BAD[case]
    argv = [a.format(**ids) for a in argv]
    tail = CLI_TINY if argv[0] in ("wsrl", "finetune") else ["--no-progress"]
    code, _out, err = cli(capsys, root, "offline", "train", *argv, *tail)
    err = err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert needle in err, err
    assert {r.run_id for r in store.list_runs()} == before  # no run created
    for rid in (ids["bc"], ids["empty"]):
        store.delete_run(rid)


@pytest.mark.slow
def test_wsrl_improves_on_the_pretrained_policy(pendulum_path, tmp_path):
    """Learning check (fixed seed, about a minute): a weak CQL agent (500 gradient steps on the
    noisy damping controller's data) swings Pendulum up better after 2,000 online env steps
    of WSRL."""
    from rlworks.eval.evaluate import evaluate

    cql = CQL(CQLConfig(dataset=pendulum_path, total_steps=500, steps_per_iter=500,
                        batch_size=128, hidden_sizes=(64, 64)))
    cql.iterate()
    ckpt = save_checkpoint(tmp_path, 500, cql.state_dict(), meta={"algo": "cql"})
    before = evaluate(cql, "Pendulum-v1", 10, seed=1).mean()
    learner = FineTune(WSRLConfig(dataset=pendulum_path, init_checkpoint=str(ckpt),
                                  warmup_steps=500, total_steps=2_500, steps_per_iter=500,
                                  batch_size=64, hidden_sizes=(64, 64)))
    while learner.global_step < learner.cfg.total_steps:
        learner.iterate()
    after = evaluate(learner, "Pendulum-v1", 10, seed=1).mean()
    assert learner.critic_updates == 4 * 2_000
    assert after > before + 300, (before, after)
