"""The offline demo: train two tiny variants on the synthetic world (tinyllava_bench.testing's), evaluate, report.

pipeline.run_demo chains the steps: settings.py (sizes and variants), base_models.py (the "pretrained" LLM and
tower), training.py, evaluation.py, reports.py and blind.py; result.py is what it measured and prints.
"""
