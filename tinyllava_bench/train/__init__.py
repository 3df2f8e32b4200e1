"""Training: recipes (base / share / share-factory / base-lora), conversation data, and the stage-by-stage trainer.

`tinyllava-bench train` drives it; from Python, `build_plan(...)` then `run_training(plan)`.
"""
