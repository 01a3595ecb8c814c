"""ReasonGym: verifiable task families with a difficulty knob and a source id.

Families (``FAMILIES``): ``add``, ``mul``, ``expr``, ``countdown``, ``sort``; see
``docs/llm/tasks.md`` for what each difficulty means and which levels are meant for pretraining
and which for the RL evaluation split. Pure Python + numpy; no torch.
"""

from rlworks.llm.tasks.base import (
    TEST_FRACTION,
    Problem,
    TaskFamily,
    format_completion,
    split_of,
)
from rlworks.llm.tasks.dataset import (
    FAMILIES,
    SftExample,
    generate_problem,
    get_family,
    make_sft_texts,
    make_split,
    sft_example,
    to_rows,
)
from rlworks.llm.tasks.rewards import correctness_reward, format_reward
from rlworks.llm.tasks.verify import (
    check_format,
    extract_answer,
    parse_int,
    parse_int_list,
    safe_eval,
    verify_countdown,
)

__all__ = [
    "FAMILIES",
    "TEST_FRACTION",
    "Problem",
    "SftExample",
    "TaskFamily",
    "check_format",
    "correctness_reward",
    "extract_answer",
    "format_completion",
    "format_reward",
    "generate_problem",
    "get_family",
    "make_sft_texts",
    "make_split",
    "parse_int",
    "parse_int_list",
    "safe_eval",
    "sft_example",
    "split_of",
    "to_rows",
    "verify_countdown",
]
