"""Online agents. Registration is by lazy string so importing this never imports torch."""

from rlworks.core.registry import AlgoSpec, register_algo

_CFG = "rlworks.algos.online.configs"

register_algo(AlgoSpec("ppo", f"{_CFG}:PPOConfig", "rlworks.algos.online.ppo:PPO",
                       "Proximal Policy Optimization, discrete and continuous actions"))
register_algo(AlgoSpec("dqn", f"{_CFG}:DQNConfig", "rlworks.algos.online.dqn:DQN",
                       "Deep Q-Network with double Q-learning and n-step returns"))
register_algo(AlgoSpec("sac", f"{_CFG}:SACConfig", "rlworks.algos.online.sac:SAC",
                       "Soft Actor-Critic with automatic entropy tuning"))
register_algo(AlgoSpec("td3", f"{_CFG}:TD3Config", "rlworks.algos.online.td3:TD3",
                       "Twin Delayed DDPG"))
