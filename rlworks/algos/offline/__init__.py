"""Offline learners: they train from a fixed dataset and never step an env except to evaluate.

Registration is by lazy string, so importing this never imports torch. ``OFFLINE_ALGOS``
tells these registry entries from the online ones (``rlworks train`` lists only the latter;
``rlworks offline train`` only these).
"""

from rlworks.algos.offline.configs import FINETUNE_OVERRIDES, RIQL_OVERRIDES
from rlworks.core.registry import AlgoSpec, register_algo

_CFG = "rlworks.algos.offline.configs"
_PKG = "rlworks.algos.offline"

_SPECS = (
    AlgoSpec("bc", f"{_CFG}:BCConfig", f"{_PKG}.bc:BC",
             "(offline) behaviour cloning, deterministic policy"),
    AlgoSpec("td3bc", f"{_CFG}:TD3BCConfig", f"{_PKG}.td3bc:TD3BC",
             "(offline) TD3+BC: TD3 with a behaviour-cloning term"),
    AlgoSpec("iql", f"{_CFG}:IQLConfig", f"{_PKG}.iql:IQL",
             "(offline) Implicit Q-Learning: expectile value, advantage-weighted policy"),
    AlgoSpec("riql", f"{_CFG}:IQLConfig", f"{_PKG}.iql:IQL",
             "(offline) Robust IQL preset: Huber Q loss, quantile over a 5-critic ensemble, "
             "normalised observations",
             overrides=RIQL_OVERRIDES),
    AlgoSpec("cql", f"{_CFG}:CQLConfig", f"{_PKG}.cql:CQL",
             "(offline) Conservative Q-Learning, CQL(H) on SAC"),
    AlgoSpec("awac", f"{_CFG}:AWACConfig", f"{_PKG}.awac:AWAC",
             "(offline) Advantage-Weighted Actor-Critic"),
    AlgoSpec("wsrl", f"{_CFG}:WSRLConfig", f"{_PKG}.finetune:FineTune",
             "(offline-to-online) WSRL: fine-tune a cql agent online with SAC, no offline data "
             "kept, after a warm-up of pretrained-policy rollouts"),
    AlgoSpec("finetune", f"{_CFG}:WSRLConfig", f"{_PKG}.finetune:FineTune",
             "(offline-to-online) fine-tune a cql agent online with SAC, offline data retained",
             overrides=FINETUNE_OVERRIDES),
)

for _spec in _SPECS:
    register_algo(_spec)

OFFLINE_ALGOS: frozenset[str] = frozenset(spec.name for spec in _SPECS)
"""Names of the offline registry entries."""

FINETUNE_ALGOS: frozenset[str] = frozenset({"wsrl", "finetune"})
"""Offline-to-online entries: they start from a pretrained run's checkpoint (``--init``)."""
INIT_ALGOS: tuple[str, ...] = ("cql",)
"""Algorithms whose checkpoints they can start from (SAC-style: tanh-Gaussian actor, twin
critics, entropy temperature)."""
