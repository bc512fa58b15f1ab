"""The import structure: floors, each importing only its own floor or the ones below; no loops; no import inside
a function except where it keeps torch out of a light process (and says so)."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FLOORS = [
    ["studio.__main__", "studio.cli"],
    ["studio.ui"],
    ["studio.jobs"],
    ["studio.serve"],
    ["studio.export"],
    ["studio.evaluate", "studio.load_probe", "studio.teacher_cost", "studio.try_it", "studio.estimate"],
    ["studio.compress"],
    ["studio.distill"],
    [
        "studio.teacher_setup",
        "studio.asked_teacher",
        "studio.labelling",
        "studio.student_setup",
        "studio.student_texts",
        "studio.logit_cache",
        "studio.distill_plan",
        "studio.stages",
        "studio.generator",
        "studio.teacher_head",
    ],
    ["studio.distill_config"],
    [
        "studio.answers",
        "studio.baselines",
        "studio.outcome",
        "studio.charts",
        "studio.dataset",
        "studio.teacher",
        "studio.student",
        "studio.accounts",
        "studio.run",
    ],
    [
        "studio.models",
        "studio.bnb",
        "studio.onnx",
        "studio.training",
        "studio.step_plan",
        "studio.checkpoints",
        "studio.validation",
        "studio.model_parts",
        "studio.progress",
        "studio.batches",
        "studio.losses",
        "studio.settings",
        "studio.logs",
        "studio.paths",
        "studio.hosting",
        "studio.metrics",
        "studio.energy",
        "studio.hand_over",
        "studio.columns",
        "studio.data_limits",
        "studio.unlabelled",
        "studio.ranks",
    ],
    ["storage"],
    ["studio.errors", "studio"],
]
"""Top to bottom. A module is on the floor of its longest listed prefix ('studio.compress.heal' on 'studio.compress')."""

LAZY = {
    "studio.cli": "each command imports what it needs: `--help` and `jobs list` start in a second, without torch",
    "studio.jobs.kinds": "the worker's main process reads job configs here; the pipeline loads in the job's process",
    "studio.jobs.service": "the CLI's job commands use it; torch loads only for the ones that check a model",
    "studio.try_it": "the browser imports it at start; a variant's loader (peft, bitsandbytes) on the first variant tried",
    "studio.serve.engine": "the server imports it at start; a variant's loader (peft, bitsandbytes) when one is served",
}
"""Modules (and packages) that may import studio/storage modules inside functions, and why."""


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted([*ROOT.glob("studio/**/*.py"), *ROOT.glob("storage/**/*.py")]):
        if "migrations" in path.parts:
            continue
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> list[tuple[str, bool]]:
    """(module imported, inside a function?) for every import of a studio/storage module in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    inside = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in ast.walk(f)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known]
            names = subs if len(subs) == len(node.names) else [node.module, *subs]  # `from pkg import module`
        else:
            continue
        found += [(name, id(node) in inside) for name in names if name in known]
    return found


def floor_of(module: str) -> int:
    best, floor = -1, None
    for number, prefixes in enumerate(FLOORS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, floor = len(prefix), number
    assert floor is not None, f"{module} is on no floor: add it to FLOORS"
    return floor


def graph() -> dict[str, list[tuple[str, bool]]]:
    known = modules()
    return {name: [(m, lazy) for m, lazy in imports(path, known) if m != name] for name, path in known.items()}


def test_every_import_goes_down_or_across():
    upward = [
        f"{m} (floor {floor_of(m)}) imports {d} (floor {floor_of(d)})"
        for m, deps in graph().items()
        for d, _ in deps
        if floor_of(d) < floor_of(m)
    ]
    assert upward == []


def test_no_import_loops():
    edges = {m: {d for d, _ in deps} for m, deps in graph().items()}
    loops = []

    def visit(node: str, path: list[str], done: set[str]) -> None:
        for nxt in edges[node]:
            if nxt in path:
                loops.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in done:
                visit(nxt, path + [nxt], done)
        done.add(node)

    done: set[str] = set()
    for start in edges:
        if start not in done:
            visit(start, [start], done)
    assert loops == []


def test_imports_inside_functions_only_where_they_keep_torch_out():
    lazy = sorted(
        m
        for m in {m for m, deps in graph().items() for _, inside in deps if inside}
        if not any(m == k or m.startswith(k + ".") for k in LAZY)
    )
    assert lazy == []


def test_the_floor_test_sees_a_wrong_import(tmp_path):
    """The checks above read real files: a lower module importing a higher one is found."""
    bad = tmp_path / "low.py"
    bad.write_text("from studio.distill import distill\n\ndef f():\n    from studio.compress import METHODS\n")
    found = imports(bad, modules())
    assert found == [("studio.distill", False), ("studio.compress", True)]
    assert floor_of("studio.compress.heal") == floor_of("studio.compress") < floor_of("studio.training")


def test_storage_and_the_worker_load_no_torch():
    code = (
        "import sys, storage, storage.jobs, storage.records, studio.jobs.worker, studio.jobs.kinds, "
        "studio.progress; print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'gradio', 'transformers'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
