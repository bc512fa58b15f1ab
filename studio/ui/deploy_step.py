"""Step 7, Deploy: serve a model of a finished run over HTTP, so the user's own software calls it.

One click serves the chosen model from the studio itself (studio/serve/api.py): classifiers at
/api/v1/models/<name>/classify, text generators through the OpenAI-compatible /v1/chat/completions. The page shows a
curl line and a Python snippet to copy. Programs call with a key made here (shown once, revoked here); a key reaches
only its owner's models. Every handler checks that the run, the served model or the key is the caller's, in the
storage query (storage/serving.py), whatever the browser sends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from html import escape

import gradio as gr

from storage import serving
from studio.baselines import TFIDF
from studio.jobs import service
from studio.serve.snippets import curl_line, python_snippet
from studio.ui.compress_step import runs_choice
from studio.ui.context import UIContext, error_box, shows_errors
from studio.ui.export_step import exportable_models
from studio.words import Task


@dataclass
class DeployTab:
    run: gr.Dropdown
    model: gr.Dropdown
    name: gr.Textbox
    hybrid: gr.Checkbox
    button: gr.Button
    status: gr.Markdown
    served: gr.Markdown
    stop_pick: gr.Dropdown
    stop: gr.Button
    key_name: gr.Textbox
    make_key: gr.Button
    new_key: gr.Markdown
    keys: gr.Markdown
    revoke_pick: gr.Dropdown
    revoke: gr.Button
    on_open: Callable[..., tuple]
    """Fills the served models and the keys when the page opens (app.py's load)."""


def base_url(request: gr.Request | None) -> str:
    """Where this page was opened: the address programs call (behind a proxy, the address the browser used)."""
    inner = getattr(request, "request", None)
    url = str(getattr(inner, "base_url", "") or "")
    return url.rstrip("/") or "http://127.0.0.1:7860"


def servable_models(ctx: UIContext, viewer, run_id: int | None) -> list[tuple[str, str]]:
    """The run's models that can be served: the Export step's list (the recommended one first) without the TF-IDF
    baseline, which is exported as its own ONNX graph but not served."""
    return [(label, name) for label, name in exportable_models(ctx, viewer, run_id) if name != TFIDF] if run_id else []


def served_view(ctx: UIContext, viewer, url: str) -> tuple[str, list[tuple[str, int]]]:
    """The caller's served models, each with how to call it; and the choices of the Stop list."""
    rows = serving.served(ctx.storage.db, viewer)
    if not rows:
        return "*You serve no model yet.*", []
    cards = []
    for r in rows:
        kind = "classifier" if r.task == Task.CLASSIFICATION else "text generator"
        hybrid = "the teacher answers when it is unsure" if r.hybrid else "no teacher behind it"
        cards.append(
            f"**{escape(r.name)}**: {escape(r.model)} of job {r.job_id} ({kind}; {hybrid}), served since "
            f"{r.created_at:%Y-%m-%d %H:%M} UTC\n\n```bash\n{curl_line(url, r.name, r.task)}\n```\n\n"
            f"```python\n{python_snippet(url, r.name, r.task)}\n```"
        )
    return "### Served now\n" + "\n\n".join(cards), [(r.name, r.id) for r in rows]


def keys_view(ctx: UIContext, viewer) -> tuple[str, list[tuple[str, int]]]:
    rows = serving.keys_of(ctx.storage.db, viewer)
    if not rows:
        return "*No key yet: make one for each program that calls your models.*", []
    lines = ["| key | for | made | last used | |", "|---|---|---|---|---|"]
    for k in rows:
        used = f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never"
        state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
        lines.append(f"| `{k.prefix}…` | {escape(k.name) or '-'} | {k.created_at:%Y-%m-%d} | {used} | {state} |")
    return "\n".join(lines), [(f"{k.prefix}… {k.name}".strip(), k.id) for k in rows if k.revoked_at is None]


def build_deploy_tab(ctx: UIContext) -> DeployTab:
    gr.Markdown(
        "### 7. Deploy\nServe a model over HTTP so your own software can call it: classifiers answer a label, text "
        "generators answer like OpenAI's API, so existing clients work by changing their address. With the teacher "
        "behind it, the small model answers first and the teacher takes the texts it is unsure of. Programs call with "
        "a key made below."
    )
    with gr.Row():
        run = gr.Dropdown(label="Run to serve from", choices=[], interactive=True)
        model = gr.Dropdown(label="Model to serve", choices=[], interactive=True)
    with gr.Row():
        name = gr.Textbox(label="Name programs call it by", placeholder="e.g. support-triage (empty: job<N>-<model>)")
        hybrid = gr.Checkbox(value=True, label="The teacher answers when the model is unsure")
    button = gr.Button("Deploy", variant="primary")
    status = gr.Markdown()
    served = gr.Markdown()
    with gr.Row():
        stop_pick = gr.Dropdown(label="Stop serving", choices=[], interactive=True)
        stop = gr.Button("Stop")
    gr.Markdown("#### API keys")
    with gr.Row():
        key_name = gr.Textbox(label="What the key is for", placeholder="e.g. helpdesk")
        make_key = gr.Button("Make a key")
    new_key = gr.Markdown()
    keys = gr.Markdown()
    with gr.Row():
        revoke_pick = gr.Dropdown(label="Revoke a key", choices=[], interactive=True)
        revoke = gr.Button("Revoke")

    def lists(viewer, request) -> tuple:
        cards, names = served_view(ctx, viewer, base_url(request))
        table, ids = keys_view(ctx, viewer)
        return cards, gr.update(choices=names, value=None), table, gr.update(choices=ids, value=None)

    @shows_errors(lambda message: (error_box(message), gr.update(), gr.update(), gr.update(), gr.update()))
    def on_open(request: gr.Request = None):
        return ("", *lists(ctx.viewer(request), request))

    @shows_errors(lambda message: gr.update(choices=[], value=None))
    def on_run(run_id, request: gr.Request = None):
        models = servable_models(ctx, ctx.viewer(request), run_id)
        return gr.update(choices=models, value=models[0][1] if models else None)

    @shows_errors(lambda message: (error_box(message), gr.update(), gr.update(), gr.update(), gr.update()))
    def on_deploy(run_id, chosen, called, with_teacher, request: gr.Request = None):
        if not run_id:
            return (error_box("Choose a finished distillation first (step 3)."), *[gr.update()] * 4)
        viewer = ctx.viewer(request)
        row = service.deploy(ctx.storage, viewer, int(run_id), chosen or "student", called or "", bool(with_teacher))
        said = f"Serving **{escape(row.name)}**: copy a line below into your program (with a key made below)."
        return (said, *lists(viewer, request))

    @shows_errors(lambda message: (error_box(message), gr.update(), gr.update(), gr.update(), gr.update()))
    def on_stop(deployment_id, request: gr.Request = None):
        if not deployment_id:
            return (error_box("Choose the served model to stop."), *[gr.update()] * 4)
        viewer = ctx.viewer(request)
        row = serving.stop(ctx.storage.db, viewer, int(deployment_id))
        return (f"Stopped serving **{escape(row.name)}**.", *lists(viewer, request))

    @shows_errors(lambda message: (error_box(message), gr.update(), gr.update(), gr.update(), gr.update()))
    def on_make_key(what, request: gr.Request = None):
        viewer = ctx.viewer(request)
        made = serving.make_key(ctx.storage.db, viewer, what or "")
        said = (
            f"Your new key (copy it now: it is not shown again):\n\n```\n{made.key}\n```\n\n"
            "Programs send it as `Authorization: Bearer <key>`; keep it out of web pages and shared files."
        )
        return (said, *lists(viewer, request))

    @shows_errors(lambda message: (error_box(message), gr.update(), gr.update(), gr.update(), gr.update()))
    def on_revoke(key_id, request: gr.Request = None):
        if not key_id:
            return (error_box("Choose the key to revoke."), *[gr.update()] * 4)
        viewer = ctx.viewer(request)
        serving.revoke_key(ctx.storage.db, viewer, int(key_id))
        return ("Key revoked: calls with it are refused from now on.", *lists(viewer, request))

    def refresh_runs(request: gr.Request = None):  # runs finished since the page opened
        return runs_choice(ctx, ctx.viewer(request))

    outputs = [served, stop_pick, keys, revoke_pick]
    run.focus(refresh_runs, None, [run])
    run.change(on_run, [run], [model], api_name="deploy_models")
    button.click(on_deploy, [run, model, name, hybrid], [status, *outputs])
    stop.click(on_stop, [stop_pick], [status, *outputs])
    make_key.click(on_make_key, [key_name], [new_key, *outputs])
    revoke.click(on_revoke, [revoke_pick], [new_key, *outputs])
    return DeployTab(
        run,
        model,
        name,
        hybrid,
        button,
        status,
        served,
        stop_pick,
        stop,
        key_name,
        make_key,
        new_key,
        keys,
        revoke_pick,
        revoke,
        on_open,
    )
