"""One-click export: the chosen model of a finished run as a zip anyone can use without the studio.

    README.md        model card (YAML metadata): teacher, data summary (no rows), method, metrics, limits
    model/           plain Hugging Face folder: config, safetensors, tokenizer (LoRA already merged)
    onnx/model.onnx  the same model for ONNX Runtime (an ONNX variant: the variant itself)
    gguf/*.gguf      text generators of the Llama family, for llama.cpp-compatible runtimes: f16, q8_0 and q4_0
                     (the card gives each one's size and next-token agreement with the float model)
    teacher/         with the hybrid option: the teacher, for inputs the student is unsure of
    predict.py       a short example that runs all of the above; export.json its settings

Every file is checked against the model it came from before the zip is written, and the zip is
written to a temp name and renamed, so a crash never leaves a half-written export.

The settings and result records are in ``studio.export.settings`` (light: the worker's main process reads them
without loading torch); ``studio.export.bundle.export_model`` writes the zip.
"""
