"""Run a recipe of compression steps on a finished distillation run and save the variant.

plan          every setting and every step checked against the model before any work
compress      load the source, apply the steps in order, save atomically under run/variants/<name>
compress_many several recipes: all planned first; a method this machine cannot run marks only
              its own variant 'unsupported'
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
import traceback
from collections.abc import Callable, Collection
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from studio import ranks
from studio.bnb import BnbInt8Settings, bnb_unsupported
from studio.compress import METHODS
from studio.compress.base import Method, RunContext, WorkingModel
from studio.compress.variant import describe_shape, load_variant, save_variant
from studio.errors import ConfigError, StudioError, UnsupportedError
from studio.models import load_for_task, load_tokenizer
from studio.progress import ProgressFn, item_progress
from studio.run import MANIFEST, RunPaths, VariantManifest, read_manifest
from studio.settings import Settings
from studio.student import count_parameters
from studio.teacher import resolve_source
from studio.words import ModelForm, VariantStatus

NAME = re.compile(r"[^a-z0-9.+_-]+")
NAME_MAX = 120
"""Characters in a variant's name at most (what the database keeps)."""


@dataclass
class Step:
    method: Method
    settings: Settings

    def label(self) -> str:
        changed = {k: v for k, v in self.settings.to_dict().items() if v != type(self.settings)().to_dict()[k]}
        return self.method.name + "".join(f"-{v}" for v in changed.values())


def parse_recipe(text: str) -> list[dict[str, Any]]:
    """'prune-heads:fraction=0.5+heal:epochs=2+int8' -> a recipe (list of step dicts)."""
    steps = []
    for part in filter(None, (p.strip() for p in text.split("+"))):
        name, _, args = part.partition(":")
        step: dict[str, Any] = {"method": name.strip()}
        for pair in filter(None, (a.strip() for a in args.split(","))):
            key, eq, value = pair.partition("=")
            if not eq:
                raise ConfigError([f"'{pair}' in step '{name}' is not a setting=value pair"])
            try:
                step[key.strip()] = json.loads(
                    value.strip().lower() if value.strip().lower() in ("true", "false") else value.strip()
                )
            except json.JSONDecodeError:
                step[key.strip()] = value.strip()
        steps.append(step)
    return steps


def plan(recipe: list[dict[str, Any]], shape: dict) -> list[Step]:
    """Check a whole recipe against a model's shape; every problem is reported at once."""
    steps, problems = _read_steps(recipe)
    shape = dict(shape)
    for position, step in enumerate(steps, 1):
        problems += [
            f"step {position} ({step.method.name}): {p}"
            for p in _check_step(step.method, step.settings, shape, position, len(steps))
        ]
    if problems:
        raise ConfigError(problems)
    return steps


def check_recipe(recipe: list[dict[str, Any]]) -> list[str]:
    """What can be known without the model: methods exist, settings are in range, quantization is last."""
    steps, problems = _read_steps(recipe)
    kinds = [step.method.kind for step in steps]
    if "quantize" in kinds[:-1]:
        problems.append("quantization must be the last step of a recipe")
    return problems


def _read_steps(recipe: list[dict[str, Any]]) -> tuple[list[Step], list[str]]:
    problems: list[str] = []
    steps: list[Step] = []
    if not recipe:
        problems.append("the recipe is empty; add at least one method (see 'python -m studio methods')")
    for position, raw in enumerate(recipe, 1):
        raw = dict(raw)
        name = raw.pop("method", None)
        method = METHODS.get(name or "")
        if method is None:
            problems.append(f"step {position}: unknown method '{name}'; choose from {', '.join(METHODS)}")
            continue
        try:
            steps.append(Step(method, method.settings.from_dict(raw)))
        except ConfigError as err:
            problems += [f"step {position} ({name}): {p}" for p in err.problems]
    return steps, problems


def _check_step(method: Method, settings: Settings, shape: dict, position: int, total: int) -> list[str]:
    if shape["quantized"]:
        return ["the model is already quantized at this point; quantization must be the last step"]
    problems = []
    if method.kind == "quantize":
        shape["quantized"] = True
        if method.name.startswith("bnb") and shape["structured"]:
            problems.append(
                "bitsandbytes loads models whose shape their config describes, and pruned heads or "
                "neurons change that; use 'int8' after structured pruning (or prune layers only)"
            )
    elif method.kind == "prune" and method.name != "magnitude":
        if "head_units" not in shape:
            return [
                "structured pruning supports BERT-style encoders and Llama-style decoders only; "
                "use 'magnitude' pruning or quantization for this model"
            ]
        problems += method.plan_shape(shape, settings) if method.plan_shape else []
        shape["structured"] = shape["structured"] or method.name != "prune-layers"
    return problems


def unsupported_reason(steps: list[Step]) -> str | None:
    """Why this machine cannot run a step of the recipe (checked before work, reported per variant)."""
    for step in steps:
        if step.method.name.startswith("bnb"):
            reason = bnb_unsupported(8 if isinstance(step.settings, BnbInt8Settings) else 4)
            if reason:
                return reason
    return None


def variant_name(steps: list[Step]) -> str:
    return NAME.sub("-", "+".join(s.label() for s in steps).lower()).strip("-")


def final_name(name: str | None, steps: list[Step]) -> str:
    """The folder name a variant gets: the name given, or one made from its recipe, made safe. A long recipe's
    own name is cut to NAME_MAX characters, ending in a hash of the whole so two recipes never share one."""
    made = NAME.sub("-", (name or variant_name(steps)).lower()).strip("-.")
    if not name and len(made) > NAME_MAX:
        made = made[: NAME_MAX - 9].rstrip("-.") + "-" + hashlib.sha1(made.encode()).hexdigest()[:8]
    return made


def recipe_names(recipes: list[tuple[str | None, list[dict[str, Any]]]]) -> list[str]:
    """The names the recipes' variants will get (recipes whose steps do not read are left out)."""
    names = []
    for name, recipe in recipes:
        steps, problems = _read_steps(recipe)
        if not problems:
            names.append(final_name(name, steps))
    return names


# --------------------------------------------------------------------------- loading the source


def load_source(ctx: RunContext, source: str) -> WorkingModel:
    """'student', 'teacher', or the name of a variant made earlier in this run (RunPaths.find_model)."""
    found = ctx.run.find_model(source)
    if found.manifest is not None:
        return load_variant(found.folder)
    model_source = resolve_source(str(found.folder))
    model = load_for_task(model_source, ctx.task, ctx.labels)
    return WorkingModel(model.eval(), load_tokenizer(model_source), ctx.task, count_parameters(model))


# --------------------------------------------------------------------------- running


def compress(
    run_dir: str | Path,
    recipe: list[dict[str, Any]],
    *,
    name: str | None = None,
    source: str = "student",
    on_progress: ProgressFn | None = None,
) -> VariantManifest:
    """Apply ``recipe`` to ``source`` and save it as run/variants/<name>. Returns its manifest."""
    return compress_many(run_dir, [(name, recipe)], source=source, on_progress=on_progress)[0]


def compress_many(
    run_dir: str | Path,
    recipes: list[tuple[str | None, list[dict[str, Any]]]],
    *,
    source: str = "student",
    on_progress: ProgressFn | None = None,
    keep: Collection[str] = (),
    on_made: Callable[[VariantManifest], None] | None = None,
) -> list[VariantManifest]:
    """Make each recipe's variant in run/variants/<name>; every recipe is checked before any work starts.

    `keep` (a resumed job): names of variants it saved before; they are kept as they are, not made again.
    Any other name already in the run is refused.
    `on_made` hears each variant's manifest as soon as it is saved (so a crash later loses none)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise ConfigError([f"{run_dir} is not a distillation run (no config.json); distill first"])
    ctx = RunContext(run_dir, RunPaths(run_dir).variants, on_progress)
    shape = describe_shape(load_source(ctx, source))
    planned, problems = [], []
    for name, recipe in recipes:
        try:
            steps = plan(recipe, shape)
        except ConfigError as err:
            problems += [f"{name or 'variant'}: {p}" for p in err.problems] if len(recipes) > 1 else err.problems
            continue
        planned.append((final_name(name, steps), steps))
    names = [n for n, _ in planned]
    problems += ["a variant name needs at least one letter or digit" for n in names if not n]
    problems += [
        f"the variant name '{n[:40]}…' has {len(n)} characters; give it a name of at most {NAME_MAX}"
        for n in names
        if len(n) > NAME_MAX
    ]
    problems += [
        f"'{n}' is the name of the run's own model; call the variant something else" for n in names if n in ("student", "teacher")
    ]
    twice = sorted({n for n in names if names.count(n) > 1})
    problems += [f"two variants are named '{n}'; give each its own name" for n in twice]
    made_before = {n for n in names if (ctx.run.variants / n / MANIFEST).exists()}
    problems += [
        f"a variant named '{n}' already exists in this run; choose another name or delete it"
        for n in names
        if n in made_before and n not in keep
    ]
    if problems:
        raise ConfigError(problems)
    results = []
    for index, (name, steps) in enumerate(planned, 1):
        if on_progress is not None:
            on_progress(item_progress("variant", index, len(planned), f"making variant {name} ({index} of {len(planned)})"))
        manifest = (
            read_manifest(ctx.run.variants / name) if name in made_before and name in keep else _run_one(ctx, name, steps, source)
        )
        if on_made is not None:
            on_made(manifest)
        results.append(manifest)
    return results


def _write_status(folder: Path, manifest: VariantManifest, status: VariantStatus, reason: str, log: str = "") -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if log:
        (folder / "error.log").write_text(log)
    replace(manifest, status=status, reason=reason).write(folder)


def _run_one(ctx: RunContext, name: str, steps: list[Step], source: str) -> VariantManifest:
    """Make one variant. In a job of several processes a recipe that heals is made by all of them (the heal trains
    data-parallel; the main process writes); any other is made by the main process while the others wait."""
    if any(step.method.kind == "heal" for step in steps):
        return _make(ctx, name, steps, source)
    ranks.on_main(lambda: _make(ctx, name, steps, source))
    return read_manifest(ctx.run.variants / name)


def _make(ctx: RunContext, name: str, steps: list[Step], source: str) -> VariantManifest:
    folder = ctx.run.variants / name
    work = ctx.run.variants / f".{name}.work"

    def start() -> None:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        (work / "recipe.json").write_text(json.dumps(manifest.to_dict(), indent=2))  # what will run, before it runs

    manifest = VariantManifest(
        name,
        VariantStatus.FAILED,  # until it is made
        source=source,
        recipe=[{"method": s.method.name, **s.settings.to_dict()} for s in steps],
        created=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    ranks.on_main(start)
    ctx.work_dir, ctx.variant = work, name
    started = time.perf_counter()
    together = True  # every process of the job works on it (until the main process goes on alone)
    try:
        reason = unsupported_reason(steps)
        if reason:
            raise UnsupportedError(reason)
        wm = load_source(ctx, source)
        last_heal = max((n for n, step in enumerate(steps, 1) if step.method.kind == "heal"), default=0)
        for number, step in enumerate(steps, 1):
            if number > last_heal and not ranks.is_main():
                break  # what follows the last heal (a quantization, say) is the main process's alone
            together = number <= last_heal
            ctx.step_number = number
            with ranks.alone() if number > last_heal else nullcontext():
                wm = step.method.apply(wm, step.settings, ctx)
            if wm.form == ModelForm.TORCH:
                wm.params = count_parameters(wm.model)
        together = False  # the saving is the main process's
        made = replace(manifest, status=VariantStatus.OK, seconds=round(time.perf_counter() - started, 1))
        ranks.on_main(lambda: save_variant(wm, folder, made))
    except UnsupportedError as err:
        why = str(err)
        ranks.on_main(lambda: _write_status(folder, manifest, VariantStatus.UNSUPPORTED, why))
    except (StudioError, RuntimeError, ValueError, OSError, MemoryError) as err:
        if ranks.peer_lost(err) or (together and ranks.world() > 1):
            # another process of the job is gone, or this one failed while the others train on with it (out of
            # memory on one GPU, say): the job stops, as one, rather than leave the others waiting for it
            raise
        # One variant failing must not cost the others; its reason and traceback are kept beside it.
        why, log = f"{type(err).__name__}: {err}", traceback.format_exc()
        ranks.on_main(lambda: _write_status(folder, manifest, VariantStatus.FAILED, why, log))
    finally:
        ranks.on_main(lambda: shutil.rmtree(work, ignore_errors=True))
    return read_manifest(folder)
