"""What only language models need: task worlds (ReasonGym in ``llm.tasks``), and later the
policy model wrapper, TinyLM, tokenizers and batched generation.

Importing this package is cheap: no torch or transformers is imported here.
"""
