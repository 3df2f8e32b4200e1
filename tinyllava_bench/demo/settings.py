"""The demo's settings: the sizes of everything it builds, the variants it trains, and its fixed choices."""

from __future__ import annotations

from dataclasses import dataclass

# Tasks whose demo questions the training data teaches (MM-Vet and LLaVA-W need a GPT judge: left out).
DEMO_EVAL_TASKS = ("gqa", "pope", "mme", "scienceqa_img", "vqav2", "textvqa")
# The paper's training-recipe ablation (base vs share, Table A1's "Recipe" column): the axis the demo varies.
ABLATION_AXIS = "recipe"
LLM_FAMILY = "phi"
TEMPLATE = "phi"
# what the demo measured and printed, in its output folder
DEMO_RECORD = "demo.json"


@dataclass(frozen=True)
class Variant:
    """One trained model of the ablation: its run name and training recipe."""

    name: str
    recipe: str


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of everything the demo builds; the defaults are the full demo (about 6 minutes on 2 CPU cores)."""

    seed: int = 0
    n_pretrain: int = 1500
    n_share_pretrain: int = 1500
    n_finetune: int = 4000
    # rows per eval task (MME: rounded up to pairs): 3,000 let regress's paired tests see a change of a few points
    # (evaluating is ~10% of the demo's time); at 1,000, share's POPE gain was significant in 2 of seeds 0-2
    n_eval: int = 3000
    tasks: tuple[str, ...] = DEMO_EVAL_TASKS
    variants: tuple[Variant, ...] = (Variant("demo-base", "base"), Variant("demo-share", "share"))
    # the model: a Phi-style LLM pretrained on the world's text, and a random SigLIP-style tower
    llm_hidden: int = 96
    llm_layers: int = 3
    vocab_size: int = 800
    image_size: int = 48
    patch_size: int = 16  # a 3x3 grid: each of the four shape slots falls in one patch
    vision_hidden: int = 128
    vision_layers: int = 2
    vision_init_std: float = 0.02
    model_max_length: int = 384
    # the LLM's language pretraining (text only, pictures spelled as words): the stand-in for Phi-2's
    llm_text_samples: int = 6000
    llm_text_steps: int = 1200
    llm_text_lr: float = 3e-3
    # the recipes' stages at demo scale: rates and epochs for tiny models instead of the paper's 1-3B LLMs; which
    # modules train in which stage stays the recipe's
    pretrain_lr: float = 3e-3
    # share's caption stage trains the LLM: a lower rate keeps what it learnt from text
    share_pretrain_lr: float = 5e-4
    finetune_lr: float = 1e-3
    pretrain_epochs: float = 1.0
    # 6 epochs: regress then finds share's VQAv2, GQA and POPE gains significant in each of seeds 0-2 and in seed 0
    # on AVX2 kernels (4 epochs: POPE only, and not on AVX2; 2 epochs: POPE in 2 of 3 seeds)
    share_pretrain_epochs: float = 6.0
    finetune_epochs: float = 3.0
    batch: int = 16
    eval_batch: int = 32
    workers: int = 2  # variants trained and evaluated side by side, one process each
    # torch threads of every demo process: 1 makes the numbers the same whatever the machine's core count (the
    # order of a float sum depends on the thread count) and keeps a busy neighbour from costing more than its share
    threads: int = 1


QUICK = DemoSettings(
    n_pretrain=48,
    n_share_pretrain=48,
    n_finetune=96,
    n_eval=12,
    llm_hidden=32,
    llm_layers=1,
    vocab_size=500,
    image_size=32,
    vision_hidden=24,
    vision_layers=1,
    llm_text_samples=64,
    llm_text_steps=4,
    share_pretrain_epochs=1.0,
    finetune_epochs=1.0,
)
