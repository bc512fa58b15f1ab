"""Run one distillation in this process, as a process of a job of several when torchrun started it:
`python -m torch.distributed.run --nproc-per-node N tests/parallel_distill.py SPEC.json`.

SPEC: {"dataset": folder, "run": folder, "config": {DistillConfig settings}, "resume": bool,
       "stop_at": step of the student's training to stop after (a cancel), or null}
"""

import json
import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studio import ranks  # noqa: E402
from studio.dataset import load_prepared  # noqa: E402
from studio.distill import distill  # noqa: E402
from studio.distill_config import DistillConfig  # noqa: E402
from studio.errors import StopRequested  # noqa: E402
from studio.progress import Progress  # noqa: E402


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    ranks.join()
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
