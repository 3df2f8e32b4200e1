"""Task YAMLs: the shipped ones match SPEC §2, and a bad file names the field and the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tinyllava_bench.errors import UserError
from tinyllava_bench.metrics import SCORER_MODULES
from tinyllava_bench.paths import REPO_ROOT
from tinyllava_bench.tasks import apply_overrides, list_tasks, load_task
from tinyllava_bench.tasks.config import read_task_file

SHORT = "\nAnswer the question using a single word or phrase."

# name -> (hub id, config, split, size, scorer, headline, max_new_tokens), from SPEC §2 and docs/run_folder.md
EXPECTED = {
    "vqav2": ("lmms-lab/VQAv2", None, "validation", 214354, "vqav2", "accuracy", 128),
    "vqav2_testdev": ("lmms-lab/VQAv2", None, "testdev", 107394, "vqav2", "accuracy", 128),
    "gqa": ("lmms-lab/GQA", "testdev_balanced_instructions", "testdev", 12578, "gqa", "accuracy", 128),
    "scienceqa_img": ("lmms-lab/ScienceQA", "ScienceQA-IMG", "test", 2017, "scienceqa", "accuracy", 1024),
    "textvqa": ("lmms-lab/textvqa", None, "validation", 5000, "textvqa", "accuracy", 128),
    "pope": ("lmms-lab/POPE", None, "test", 9000, "pope", "f1", 128),
    "mme": ("lmms-lab/MME", None, "test", 2374, "mme", "perception", 128),
    "mmvet": ("lmms-lab/MMVet", None, "test", 218, "mmvet", "total", 1024),
    "llava_wild": (
        "lmms-lab/llava-bench-in-the-wild",
        None,
        "train",
        60,
        "llava_wild",
        "relative_score",
        1024,
    ),
}


def _valid_task() -> dict:
    return yaml.safe_load((REPO_ROOT / "tasks" / "vqav2.yaml").read_text())


def _write(folder: Path, name: str, data: dict) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_shipped_tasks_match_the_spec() -> None:
    tasks = {task.name: task for task in list_tasks()}
    assert set(tasks) == set(EXPECTED)
    for name, (hub_id, config, split, size, scorer, headline, max_new_tokens) in EXPECTED.items():
        task = tasks[name]
        assert (task.dataset.path, task.dataset.name, task.dataset.split) == (hub_id, config, split), name
        assert (task.size, task.scorer, task.headline) == (size, scorer, headline), name
        assert task.scorer in SCORER_MODULES
        generation = task.generation_for("official")
        assert (generation.max_new_tokens, generation.temperature, generation.num_beams) == (
            max_new_tokens,
            0,
            1,
        )
        assert task.dataset.revision  # pinned field present ("main" where the commit is unknown)


def test_judges_and_submissions_are_the_papers() -> None:
    mmvet, wild = load_task("mmvet"), load_task("llava_wild")
    assert (mmvet.judge.model, mmvet.judge.temperature, mmvet.judge.max_tokens) == ("gpt-4-0613", 0, 3)
    assert (wild.judge.model, wild.judge.temperature, wild.judge.max_tokens) == ("gpt-4-0314", 0.2, 1024)
    submissions = {task.name: task.submission for task in list_tasks() if task.submission}
    assert submissions == {"vqav2_testdev": "vqav2_evalai", "gqa": "gqa", "mmvet": "mmvet"}


def test_short_answer_suffix_is_byte_exact() -> None:
    for name in ("vqav2", "vqav2_testdev", "gqa", "textvqa", "pope", "mme"):
        assert load_task(name).prompt.suffix.encode() == SHORT.encode(), name
    assert (
        load_task("scienceqa_img").prompt.suffix
        == "\nAnswer with the option's letter from the given choices directly."
    )
    assert load_task("mmvet").prompt.suffix == "" and load_task("llava_wild").prompt.suffix == ""


def test_lmms_eval_protocol_changes_only_what_lmms_eval_does() -> None:
    textvqa = load_task("textvqa")
    assert textvqa.prompt_for("official").ocr_tokens is True
    assert textvqa.prompt_for("lmms-eval").ocr_tokens is False
    assert load_task("vqav2").generation_for("lmms-eval").max_new_tokens == 16
    assert load_task("vqav2").generation_for("official").max_new_tokens == 128


def test_typo_in_a_field_names_the_field_and_the_file(tmp_path: Path) -> None:
    data = _valid_task()
    data["promt"] = data.pop("prompt")
    path = _write(tmp_path, "vqav2", data)
    with pytest.raises(UserError) as error:
        read_task_file(path)
    message = str(error.value)
    assert str(path) in message and "promt" in message and "prompt" in message


def test_wrong_type_names_the_nested_field(tmp_path: Path) -> None:
    data = _valid_task()
    data["generation"]["max_new_tokens"] = "many"
    with pytest.raises(UserError, match=r"generation\.max_new_tokens"):
        read_task_file(_write(tmp_path, "vqav2", data))


def test_unknown_scorer_is_named(tmp_path: Path) -> None:
    data = _valid_task()
    data["scorer"] = "bleu"
    with pytest.raises(UserError, match=r"scorer: unknown scorer 'bleu'"):
        read_task_file(_write(tmp_path, "vqav2", data))


def test_bad_protocol_override_is_named(tmp_path: Path) -> None:
    data = _valid_task()
    data["protocols"]["lmms-eval"]["prompt"] = {"sufix": "x"}
    with pytest.raises(UserError, match=r"protocols\.lmms-eval\.prompt: sufix"):
        read_task_file(_write(tmp_path, "vqav2", data))
    data["protocols"] = {"vlmevalkit": {}}
    with pytest.raises(UserError, match="unknown protocol"):
        read_task_file(_write(tmp_path, "vqav2", data))


def test_judged_task_without_a_judge_is_refused(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO_ROOT / "tasks" / "mmvet.yaml").read_text())
    del data["judge"]
    with pytest.raises(UserError, match="judge"):
        read_task_file(_write(tmp_path, "mmvet", data))


def test_invalid_yaml_gives_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\ndataset: [unclosed\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"broken\.yaml is not valid YAML \(line \d+"):
        read_task_file(path)


def test_name_must_match_the_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="must match the file name"):
        read_task_file(_write(tmp_path, "other_name", _valid_task()))


def test_unknown_task_lists_the_known_ones() -> None:
    with pytest.raises(UserError) as error:
        load_task("vqa_v3")
    assert "vqa_v3" in str(error.value) and "textvqa" in str(error.value) and "mmvet" in str(error.value)


def test_tasks_dir_can_be_moved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _valid_task()
    data["name"] = "my_vqa"
    data["size"] = 3
    _write(tmp_path, "my_vqa", data)
    monkeypatch.setenv("TINYLLAVA_BENCH_TASKS_DIR", str(tmp_path))
    assert [task.name for task in list_tasks()] == ["my_vqa"]
    assert load_task("my_vqa").size == 3


def test_overrides_parse_cli_text_and_win_over_the_protocol() -> None:
    textvqa = apply_overrides(
        load_task("textvqa"), {"prompt.ocr_tokens": "false", "generation.max_new_tokens": "64"}
    )
    assert textvqa.prompt_for("official").ocr_tokens is False
    assert textvqa.generation_for("official").max_new_tokens == 64
    on_for_lmms = apply_overrides(load_task("textvqa"), {"prompt.ocr_tokens": True})
    assert on_for_lmms.prompt_for("lmms-eval").ocr_tokens is True  # the user beats lmms-eval's own "off"
    with pytest.raises(UserError, match="no option 'prompt.ocr'"):
        apply_overrides(load_task("textvqa"), {"prompt.ocr": "false"})
    with pytest.raises(UserError, match=r"generation\.max_new_tokens"):
        apply_overrides(load_task("textvqa"), {"generation.max_new_tokens": "0"})


def test_required_columns_follow_the_prompt() -> None:
    textvqa = load_task("textvqa")
    assert "ocr_tokens" not in textvqa.required_columns("official")  # scoring never needs them
    assert "ocr_tokens" in textvqa.required_columns("official", for_prompt=True)
    assert "ocr_tokens" not in textvqa.required_columns("lmms-eval", for_prompt=True)
    assert {"hint", "choices", "question"} <= set(
        load_task("scienceqa_img").required_columns(for_prompt=True)
    )
