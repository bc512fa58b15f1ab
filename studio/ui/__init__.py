"""The browser studio: a Gradio wizard over the pipeline and storage APIs (no training logic here).

Each step is its own module with a `build_<step>_tab(ctx)` that returns a small dataclass of its
components; `app.py` puts them together. Handlers are plain functions of values, tested without a
browser; the browser tests drive the whole page.
"""
