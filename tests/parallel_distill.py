"""Run one distillation in this process, as a process of a job of several when torchrun started it:
`python -m torch.distributed.run --nproc-per-node N tests/parallel_distill.py SPEC.json`.

SPEC: {"dataset": folder, "run": folder, "config": {DistillConfig settings}, "resume": bool,
       "stop_at": step of the student's training to stop after (a cancel), or null}
  or  {"compress": run folder, "recipes": [[name, recipe text], ...]}: make those variants of a finished run, then
      measure the run's models and them (compare.json), as a compress job does
  or  {"evaluate": run folder}: measure its teacher and student (eval.json)
"""

import json
import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studio import ranks  # noqa: E402
from studio.compress.pipeline import compress_many, parse_recipe  # noqa: E402
from studio.dataset import load_prepared  # noqa: E402
from studio.distill import distill  # noqa: E402
from studio.distill_config import DistillConfig  # noqa: E402
from studio.errors import StopRequested  # noqa: E402
from studio.evaluate import evaluate_all, evaluate_run  # noqa: E402
from studio.progress import Progress  # noqa: E402


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    ranks.join()
    if "evaluate" in spec:
        evaluate_run(spec["evaluate"])
        print(f"rank {ranks.rank()} measured", flush=True)
        return 0
    if "compress" in spec:
        made = compress_many(spec["compress"], [(name, parse_recipe(text)) for name, text in spec["recipes"]])
        print(f"rank {ranks.rank()} made {[str(m.status) for m in made]}", flush=True)
        evaluate_all(spec["compress"], variants=[m.name for m in made], measure_memory=False)
        print(f"rank {ranks.rank()} measured", flush=True)
        return 0
    stop_at = spec.get("stop_at")

    def on_progress(p: Progress) -> None:  # only the main process asks to stop, as a job's reporter does
        if stop_at and ranks.is_main() and p.stage == "student" and (p.global_step or 0) >= stop_at:
            raise StopRequested()

    try:
        distill(
            DistillConfig(**spec["config"]), load_prepared(spec["dataset"]), spec["run"], on_progress, spec.get("resume", False)
        )
    except StopRequested:
        print(f"rank {ranks.rank()} stopped", flush=True)
        return 3
    print(f"rank {ranks.rank()} done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
