"""Builders and fakes for tests, the demo and the benchmarks: tiny models, small datasets, a fake model.

- `models`: tiny random TinyLLaVA models in every LLM family (llama, gemma, phi, stablelm, qwen2), vision tower
  (siglip, clip) and connector, written in every checkpoint layout (native, factory, factory_split, legacy,
  hf_llava); realistic-size random models for the benchmarks (`sizes.ModelSpec`); hub-shaped LLM and tower folders
  for the trainer.
- `datasets`: benchmark copies of every task in the hub datasets' own columns (rows from `task_rows` and
  `judged_rows`, pictures from the synthetic world in `scenes` with answers from `questions`);
  `training_data`: LLaVA-format training data drawn from the same world.
- `images`: random pictures of any size and mode.
- `fake_model`: a model that implements the engine's model protocol without weights.

The modules import nothing from here: import them by name (`from tinyllava_bench.testing.models import ...`), so
that a torch-free module (`sizes`) stays torch-free.
"""
